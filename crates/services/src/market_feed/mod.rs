//! Market data sources without I/O: the bundled NSE universe, a seeded tick simulator, CSV
//! replay / recording of ticks, and the guard every tick passes before it is published.

pub mod csv_replay;
pub mod feed;
pub mod simulator;
pub mod tick_guard;
pub mod universe;

pub use csv_replay::{parse_ticks_csv, ticks_to_csv, BadRow, CsvColumns, CsvReplay, COLUMNS};
pub use simulator::TickSimulator;
pub use tick_guard::{TickGuard, TickRejection};
pub use universe::nse_universe;
