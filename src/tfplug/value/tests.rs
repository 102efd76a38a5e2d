//! Wire-format tests for the value codecs.
