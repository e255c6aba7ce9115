fn main() {
    std::process::exit(dupdesk::cli::main());
}
