//! Key material the provider generates and rotates, and the rotation engine they share.

pub mod rotation;
