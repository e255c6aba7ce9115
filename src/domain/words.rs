//! English for counts shown to people: "1 row", "2 rows", "0 rows". Every front end (the
//! commands, the TUI) says a count through [`count`], so none says "1 rows".

/// `n` and the noun, singular for exactly one: `count(1, "row", "rows")` is `"1 row"`.
pub fn count<N: std::fmt::Display + PartialEq + From<u8>>(n: N, one: &str, many: &str) -> String {
    let noun = if n == N::from(1) { one } else { many };
    format!("{n} {noun}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_everything_else_plural() {
        assert_eq!(count(0u32, "row", "rows"), "0 rows");
        assert_eq!(count(1u32, "row", "rows"), "1 row");
        assert_eq!(count(2u32, "row", "rows"), "2 rows");
        assert_eq!(count(1usize, "attempt", "attempts"), "1 attempt");
        assert_eq!(count(-1i64, "attempt", "attempts"), "-1 attempts");
    }
}
