//! Table tests of the patch strategies, taken from upstream's documented behaviour.

mod apply;
mod schema;
mod strategic;
mod three_way;
