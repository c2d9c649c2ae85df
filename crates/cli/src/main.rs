//! `alpha-panda`: parse the command line and hand off; [`alpha_panda::cli::main`] decides the exit code.

// glibc's allocator spent a quarter of the pipeline's CPU on Kafka in malloc, free and their
// consolidation of freed chunks (every record is a handful of short-lived allocations on several
// threads); mimalloc's thread-local free lists cost a fraction of that (README, performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    alpha_panda::cli::main()
}
