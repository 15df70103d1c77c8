//! The runtime's integration tests, as one binary: the driver is linked
//! once, not once per file. They run against the server in `MONGODB_URI`
//! (see `scripts/test-server`) and fail when it is missing.

mod common;

mod apply;
mod batches;
mod commands;
mod connect;
mod continue_on_error;
mod dry_run;
#[cfg(unix)]
mod faults;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "http")]
mod http_hostile;
#[cfg(unix)]
mod index_build_kills;
mod late_writes;
mod lock;
mod mongos;
#[cfg(unix)]
mod net_faults;
mod operations;
mod plan;
mod recovery;
mod refusals;
mod releases_behind;
mod schema;
#[cfg(feature = "macros")]
mod schema_shapes;
mod status_details;
mod stop;
mod traces;
mod transactions;
#[cfg(unix)]
mod walk_faults;
mod workflow;
