//! Expressions too deep to plan are refused before either engine builds them. DataFusion
//! clones, rewrites and drops expression trees recursively, so `1+1+...+1` with a few
//! thousand terms (a left-deep tree that deep) overflows a thread's stack and aborts the
//! whole server: one request could take it down. Both query languages are counted on their
//! tokens, before any tree exists: operators and opening parentheses bound the depth a tree
//! can reach. Real queries use a few dozen; Prometheus and PostgreSQL have no such limit
//! because their stacks grow, which Rust's do not.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// The most operators and opening parentheses one query may hold. The server's threads
/// have stacks deep enough for this many levels with room to spare (see `main.rs`).
pub const MAX_OPERATORS: usize = 1000;

/// Refuses a query whose `operators` (counted by its language's lexer) exceed the limit.
pub fn check(operators: usize) -> Result<(), String> {
    if operators > MAX_OPERATORS {
        return Err(format!(
            "query too complex: {operators} operators and parentheses, at most {MAX_OPERATORS}"
        ));
    }
    Ok(())
}

/// The check for SQL, on sqlparser's tokens. Text that does not tokenize passes, for the
/// parser to report.
pub fn check_sql(sql: &str) -> Result<(), String> {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return Ok(());
    };
    let operators = tokens
        .iter()
        .filter(|t| match t {
            Token::Word(w) => matches!(
                w.keyword,
                Keyword::AND
                    | Keyword::OR
                    | Keyword::NOT
                    | Keyword::LIKE
                    | Keyword::ILIKE
                    | Keyword::IS
                    | Keyword::BETWEEN
                    | Keyword::WHEN
            ),
            Token::LParen
            | Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::DuckIntDiv
            | Token::StringConcat
            | Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Spaceship
            | Token::Caret
            | Token::Ampersand
            | Token::Pipe
            | Token::ShiftLeft
            | Token::ShiftRight
            | Token::DoubleColon
            | Token::Arrow
            | Token::LongArrow
            | Token::Tilde
            | Token::ExclamationMarkTilde => true,
            _ => false,
        })
        .count();
    check(operators)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_chains_and_deep_parentheses_are_refused_lists_are_not() {
        let chain = |n: usize| format!("SELECT {}", vec!["1"; n].join("+"));
        assert!(check_sql(&chain(MAX_OPERATORS + 1)).is_ok());
        let err = check_sql(&chain(MAX_OPERATORS + 2)).unwrap_err();
        assert!(err.contains("too complex"), "{err}");
        let deep = format!("SELECT {}1{}", "(".repeat(1001), ")".repeat(1001));
        assert!(check_sql(&deep).is_err());
        let or_chain = format!("SELECT 1 WHERE {}", vec!["a = 1"; 600].join(" OR "));
        assert!(check_sql(&or_chain).is_err());
        // A long IN list is flat: values and commas do not count.
        let list = (0..10_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(check_sql(&format!("SELECT 1 WHERE a IN ({list})")).is_ok());
        // Operators inside strings are text.
        assert!(check_sql(&format!("SELECT '{}'", "+".repeat(5000))).is_ok());
    }
}
