//! `provider::gitlabflux::shard_for(name, shards)`: which Flux shard a tenant belongs to.

use crate::flux::placement::{self, ShardError};
use crate::tfplug::{Function, FunctionError, FunctionSignature, Parameter, Type, Value};

pub struct ShardFor;

impl Function for ShardFor {
    fn name(&self) -> &'static str {
        "shard_for"
    }

    fn signature(&self) -> FunctionSignature {
        FunctionSignature {
            parameters: vec![
                Parameter::new("name", Type::String, "The tenant or object name to place."),
                Parameter::new(
                    "shards",
                    Type::list(Type::String),
                    "The shard names, as in `gitlabflux_flux_bootstrap.sharding.shards`.",
                ),
            ],
            variadic: None,
            return_type: Type::String,
            summary: "Place a name on a Flux shard by rendezvous hashing",
            description: "Returns the shard `name` belongs to. The answer depends only on the name \
                and the set of shards (not their order); adding a shard moves only the names whose \
                new best shard is the added one (about 1/(N+1) of them). Score: the first 8 bytes \
                of SHA-256(shard, 0x00, name), highest wins.",
        }
    }

    fn call(&self, args: &[Value]) -> Result<Value, FunctionError> {
        let name = args
            .first()
            .and_then(Value::as_str)
            .ok_or_else(|| FunctionError::argument(0, "name must be a string"))?;
        let shards: Vec<&str> = args
            .get(1)
            .and_then(Value::as_list)
            .ok_or_else(|| FunctionError::argument(1, "shards must be a list of strings"))?
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| FunctionError::argument(1, "shards must not contain null"))
            })
            .collect::<Result<_, _>>()?;
        placement::shard_for(name, &shards)
            .map(Value::from)
            .map_err(|e| {
                let index = if e == ShardError::EmptyName { 0 } else { 1 };
                FunctionError::argument(index, e.to_string())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(names: &[&str]) -> Value {
        Value::List(names.iter().map(|s| Value::from(*s)).collect())
    }

    #[test]
    fn places_a_name() {
        let out = ShardFor
            .call(&["team-a".into(), shards(&["s1", "s2"])])
            .expect("placed");
        // Pinned by the documented rule (see flux::placement).
        assert_eq!(out, Value::from("s1"));
    }

    #[test]
    fn errors_name_the_argument() {
        let e = ShardFor
            .call(&["x".into(), shards(&[])])
            .expect_err("no shards");
        assert_eq!(e.argument, Some(1));
        let e = ShardFor
            .call(&["".into(), shards(&["a"])])
            .expect_err("empty name");
        assert_eq!(e.argument, Some(0));
        let e = ShardFor
            .call(&["x".into(), Value::List(vec![Value::Null])])
            .expect_err("null shard");
        assert_eq!(e.argument, Some(1));
    }
}
