//! Flux domain knowledge: shard placement now; distribution and rendering join it with the
//! bootstrap work.

pub mod sharding;
