//! `alpha-panda`: parse the command line and hand off; [`alpha_panda::cli::main`] decides the exit code.

fn main() -> std::process::ExitCode {
    alpha_panda::cli::main()
}
