//! The `zoo-select` binary: arguments, terminal output and exit codes over the library.
//! Exit codes: 0 success, 1 error (one line on stderr), 2 usage, 130 interrupted.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
