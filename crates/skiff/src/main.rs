//! The one skiff binary.

fn main() {}
