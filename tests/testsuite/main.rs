//! The CLI's tests, as one binary: the driver is linked once, not once per
//! file, and the slow tests of different files (fixture builds, the bundle,
//! the shutdown soak) run side by side instead of one file after another.
//! Those that need a server read it from `MONGODB_URI` (`scripts/test`
//! starts one) and fail without it.

mod common;

mod bundle;
mod cli;
mod diff;
mod dry_run;
mod e2e;
mod merge;
mod packaged;
mod schema;
mod shutdown;
mod test_helper;
