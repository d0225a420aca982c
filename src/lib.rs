//! Holds no code: this package exists so that the integration tests in `tests/` run under `cargo test --workspace`.
