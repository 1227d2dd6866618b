//! The integration tests: one binary, driving the real library and the real `proxy-renewd`
//! binary against the simulator on a loopback port.

mod cli;
mod client_errors;
mod curl;
mod fixtures;
mod helpers;
mod hostile;
mod post_once;
mod retries;
mod secrets;
mod simulator;
