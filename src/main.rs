fn main() {
    std::process::exit(dupdesk::ui::cli::main());
}
