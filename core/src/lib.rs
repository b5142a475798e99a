//! The engine behind `libnosparse.so`.
//!
//! The cdylib (`src/lib.rs` at the workspace root) exports the interposed symbols and
//! calls [`hook`]; everything else lives here, where nothing is exported, so tests,
//! examples and tools can use the engine without interposing their own writes.
//!
//! `no_std`: the library runs inside other programs, on their threads, in their signal
//! handlers; it uses no allocator, no unwinder and no libc function it does not name.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod alloc;
pub mod config;
pub mod engine;
pub mod error;
pub mod extents;
pub mod fs;
pub mod glob;
pub mod hook;
pub mod log;
pub mod num;
pub mod policy;
pub mod real;
pub mod report;
pub mod scratch;
pub mod settings;
pub mod state;
pub mod sys;
