//! placeholder: precedence (issue 5)
