//! Black-box tests for berthd.
