//! `openai-batch`: see the `batch_cli` library.

fn main() -> std::process::ExitCode {
    batch_cli::main()
}
