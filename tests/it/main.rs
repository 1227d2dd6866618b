//! The integration tests: one binary, driving the real library and the real `proxy-renewd`
//! binary against the simulator on a loopback port.

mod advice;
mod alerts;
mod cli;
mod client_errors;
mod config;
mod curl;
mod cycle;
mod daemon;
mod dashboard;
mod database;
mod demo;
mod docs;
mod first_run;
mod fixtures;
mod forecast;
mod ha;
mod helpers;
mod hostile;
mod lapse;
mod metrics;
mod output;
mod packaging;
mod pg;
mod policy;
mod post_once;
mod purchase;
mod retries;
mod rules;
mod scale;
mod secrets;
mod simulator;
mod smtp;
mod store;
