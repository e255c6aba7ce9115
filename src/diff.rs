//! placeholder: field and character diffs (issue 4)
