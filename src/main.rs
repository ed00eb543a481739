//! The `sluice` command: parse arguments, call the library, map the result to an exit code.

/// jemalloc instead of the system's allocator (see `Cargo.toml`): resident memory that
/// follows what a batch holds, not what it has held.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(sluice::cli::main());
}
