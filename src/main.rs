fn main() -> std::process::ExitCode {
    agora::cli::main()
}
