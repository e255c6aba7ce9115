//! placeholder: the matcher (issue 3)
