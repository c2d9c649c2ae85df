//! Market data sources without I/O: the bundled NSE universe, a seeded tick simulator, and CSV
//! replay / recording of ticks.

pub mod csv_replay;
pub mod feed;
pub mod simulator;
pub mod universe;

pub use csv_replay::{parse_ticks_csv, ticks_to_csv, BadRow, CsvReplay};
pub use simulator::TickSimulator;
pub use universe::nse_universe;
