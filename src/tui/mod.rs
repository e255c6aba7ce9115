//! placeholder: the TUI (issue 4)
