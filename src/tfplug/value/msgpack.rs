//! MessagePack form of cty values, the usual encoding of the plugin
//! protocol's DynamicValue (see Terraform's object wire format).
//!
//! Decoding reads the input as an untrusted byte slice: every length is
//! checked against the bytes actually present before it is used, nothing is
//! pre-allocated beyond what the remaining input could hold, and nesting is
//! bounded by [`super::MAX_DEPTH`].

use std::collections::BTreeMap;
use std::convert::Infallible;

use rmp::Marker;
use rmp::encode::{self as enc, ByteBuf, ValueWriteError};

use super::json;
use super::number::Number;
use super::path::{AttrPath, PathStep};
use super::types::Type;
use super::value::{Refinements, Value, check_attribute_names};
use super::{MAX_DEPTH, ValueError};

/// Extension type cty uses for an unknown value that carries refinements.
const EXT_REFINED_UNKNOWN: i8 = 12;

/// cty refuses larger refinement payloads as a likely attempt at abuse.
const MAX_REFINEMENT_PAYLOAD: usize = 1024;

// Keys of the refinement map in a refined unknown's payload.
const REFINE_NULLNESS: i64 = 1;
const REFINE_STRING_PREFIX: i64 = 2;
const REFINE_NUMBER_LOWER: i64 = 3;
const REFINE_NUMBER_UPPER: i64 = 4;
const REFINE_LENGTH_LOWER: i64 = 5;
const REFINE_LENGTH_UPPER: i64 = 6;

pub(crate) fn decode(bytes: &[u8], ty: &Type) -> Result<Value, ValueError> {
    let mut d = Decoder {
        buf: bytes,
        pos: 0,
        path: AttrPath::root(),
    };
    let v = d.value(ty, 0)?;
    if d.pos != bytes.len() {
        return Err(ValueError::TrailingBytes {
            count: bytes.len() - d.pos,
        });
    }
    Ok(v)
}

pub(crate) fn encode(v: &Value, ty: &Type) -> Result<Vec<u8>, ValueError> {
    let mut e = Encoder {
        out: ByteBuf::new(),
        path: AttrPath::root(),
    };
    e.value(v, ty, 0)?;
    Ok(e.out.into_vec())
}

/// Names the wire kind in type-mismatch messages (never the content).
fn marker_kind(m: Marker) -> &'static str {
    match m {
        Marker::Null => "nil",
        Marker::True | Marker::False => "msgpack boolean",
        Marker::FixPos(_)
        | Marker::FixNeg(_)
        | Marker::U8
        | Marker::U16
        | Marker::U32
        | Marker::U64
        | Marker::I8
        | Marker::I16
        | Marker::I32
        | Marker::I64 => "msgpack integer",
        Marker::F32 | Marker::F64 => "msgpack float",
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => "msgpack string",
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => "msgpack binary",
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => "msgpack array",
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => "msgpack map",
        Marker::FixExt1
        | Marker::FixExt2
        | Marker::FixExt4
        | Marker::FixExt8
        | Marker::FixExt16
        | Marker::Ext8
        | Marker::Ext16
        | Marker::Ext32 => "msgpack extension",
        Marker::Reserved => "reserved msgpack byte",
    }
}

fn is_ext(m: Marker) -> bool {
    matches!(
        m,
        Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32
    )
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    path: AttrPath,
}

impl<'a> Decoder<'a> {
    fn malformed(&self, reason: &'static str) -> ValueError {
        ValueError::Msgpack {
            path: self.path.clone(),
            reason,
        }
    }

    fn mismatch(&self, ty: &Type, m: Marker) -> ValueError {
        ValueError::TypeMismatch {
            path: self.path.clone(),
            expected: ty.friendly_name(),
            found: marker_kind(m),
        }
    }

    fn too_deep(&self) -> ValueError {
        ValueError::TooDeep {
            path: self.path.clone(),
            limit: MAX_DEPTH,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn peek(&self) -> Result<Marker, ValueError> {
        self.buf
            .get(self.pos)
            .map(|b| Marker::from_u8(*b))
            .ok_or_else(|| self.malformed("unexpected end of input"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ValueError> {
        if n > self.remaining() {
            return Err(self.malformed("unexpected end of input"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], ValueError> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    fn marker(&mut self) -> Result<Marker, ValueError> {
        let m = self.peek()?;
        self.pos += 1;
        Ok(m)
    }

    fn len8(&mut self) -> Result<usize, ValueError> {
        Ok(usize::from(u8::from_be_bytes(self.take_array()?)))
    }

    fn len16(&mut self) -> Result<usize, ValueError> {
        Ok(usize::from(u16::from_be_bytes(self.take_array()?)))
    }

    fn len32(&mut self) -> Result<usize, ValueError> {
        usize::try_from(u32::from_be_bytes(self.take_array()?))
            .map_err(|_| self.malformed("length out of range"))
    }

    /// Length of a str or bin (the same bytes serve as a string for cty).
    fn bytes_len(&mut self, m: Marker) -> Result<Option<usize>, ValueError> {
        Ok(Some(match m {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 | Marker::Bin8 => self.len8()?,
            Marker::Str16 | Marker::Bin16 => self.len16()?,
            Marker::Str32 | Marker::Bin32 => self.len32()?,
            _ => return Ok(None),
        }))
    }

    fn array_len(&mut self, ty: &Type) -> Result<usize, ValueError> {
        let m = self.marker()?;
        match m {
            Marker::FixArray(n) => Ok(usize::from(n)),
            Marker::Array16 => self.len16(),
            Marker::Array32 => self.len32(),
            _ => Err(self.mismatch(ty, m)),
        }
    }

    fn map_len(&mut self, ty: &Type) -> Result<usize, ValueError> {
        let m = self.marker()?;
        match m {
            Marker::FixMap(n) => Ok(usize::from(n)),
            Marker::Map16 => self.len16(),
            Marker::Map32 => self.len32(),
            _ => Err(self.mismatch(ty, m)),
        }
    }

    /// Capacity for `claimed` elements that each take at least one byte:
    /// never more than the input could actually contain.
    fn capacity(&self, claimed: usize) -> usize {
        claimed.min(self.remaining())
    }

    fn string(&mut self, ty: &Type) -> Result<String, ValueError> {
        let m = self.marker()?;
        let Some(n) = self.bytes_len(m)? else {
            return Err(self.mismatch(ty, m));
        };
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(ValueError::InvalidUtf8 {
                path: self.path.clone(),
            }),
        }
    }

    /// Any msgpack integer, widened so that u64 and i64 both fit.
    fn integer(&mut self) -> Result<Option<i128>, ValueError> {
        let m = self.marker()?;
        Ok(Some(match m {
            Marker::FixPos(n) => i128::from(n),
            Marker::FixNeg(n) => i128::from(n),
            Marker::U8 => i128::from(u8::from_be_bytes(self.take_array()?)),
            Marker::U16 => i128::from(u16::from_be_bytes(self.take_array()?)),
            Marker::U32 => i128::from(u32::from_be_bytes(self.take_array()?)),
            Marker::U64 => i128::from(u64::from_be_bytes(self.take_array()?)),
            Marker::I8 => i128::from(i8::from_be_bytes(self.take_array()?)),
            Marker::I16 => i128::from(i16::from_be_bytes(self.take_array()?)),
            Marker::I32 => i128::from(i32::from_be_bytes(self.take_array()?)),
            Marker::I64 => i128::from(i64::from_be_bytes(self.take_array()?)),
            _ => {
                self.pos -= 1;
                return Ok(None);
            }
        }))
    }

    fn number(&mut self) -> Result<Number, ValueError> {
        if let Some(i) = self.integer()? {
            return match (i64::try_from(i), u64::try_from(i)) {
                (Ok(i), _) => Ok(Number::from(i)),
                (_, Ok(u)) => Ok(Number::from(u)),
                _ => Err(ValueError::InvalidNumber {
                    path: self.path.clone(),
                }),
            };
        }
        let m = self.marker()?;
        let f = match m {
            Marker::F32 => f64::from(f32::from_be_bytes(self.take_array()?)),
            Marker::F64 => f64::from_be_bytes(self.take_array()?),
            _ => {
                self.pos -= 1;
                let s = self.string(&Type::Number)?;
                return s.parse().map_err(|_| ValueError::InvalidNumber {
                    path: self.path.clone(),
                });
            }
        };
        if f.is_nan() {
            return Err(ValueError::InvalidNumber {
                path: self.path.clone(),
            });
        }
        // Exact binary value, as cty holds it; re-encoding gives the same float.
        Ok(Number::from_f64_exact(f))
    }

    fn value(&mut self, ty: &Type, depth: usize) -> Result<Value, ValueError> {
        let m = self.peek()?;
        if is_ext(m) {
            return self.unknown(ty);
        }
        if m == Marker::Null {
            self.pos += 1;
            return Ok(Value::Null);
        }
        if depth > MAX_DEPTH {
            return Err(self.too_deep());
        }
        match ty {
            Type::Dynamic => self.dynamic(depth),
            Type::Bool => match self.marker()? {
                Marker::True => Ok(Value::Bool(true)),
                Marker::False => Ok(Value::Bool(false)),
                other => Err(self.mismatch(ty, other)),
            },
            Type::Number => {
                let is_number = matches!(
                    m,
                    Marker::FixPos(_)
                        | Marker::FixNeg(_)
                        | Marker::U8
                        | Marker::U16
                        | Marker::U32
                        | Marker::U64
                        | Marker::I8
                        | Marker::I16
                        | Marker::I32
                        | Marker::I64
                        | Marker::F32
                        | Marker::F64
                        | Marker::FixStr(_)
                        | Marker::Str8
                        | Marker::Str16
                        | Marker::Str32
                );
                if !is_number {
                    return Err(self.mismatch(ty, m));
                }
                Ok(Value::Number(self.number()?))
            }
            Type::String => Ok(Value::String(self.string(ty)?)),
            Type::List(et) | Type::Set(et) => {
                let n = self.array_len(ty)?;
                let mut items = Vec::with_capacity(self.capacity(n));
                for i in 0..n {
                    self.path.push(PathStep::Index(i as i64));
                    items.push(self.value(et, depth + 1)?);
                    self.path.pop();
                }
                Ok(if matches!(ty, Type::Set(_)) {
                    Value::Set(items)
                } else {
                    Value::List(items)
                })
            }
            Type::Tuple(ets) => {
                let n = self.array_len(ty)?;
                if n != ets.len() {
                    return Err(ValueError::TupleLength {
                        path: self.path.clone(),
                        expected: ets.len(),
                        found: n as u64,
                    });
                }
                let mut items = Vec::with_capacity(n);
                for (i, et) in ets.iter().enumerate() {
                    self.path.push(PathStep::Index(i as i64));
                    items.push(self.value(et, depth + 1)?);
                    self.path.pop();
                }
                Ok(Value::Tuple(items))
            }
            Type::Map(et) => {
                let n = self.map_len(ty)?;
                let mut entries = BTreeMap::new();
                for _ in 0..n {
                    let k = self.key()?;
                    self.path.push(PathStep::Key(k.clone()));
                    let v = self.value(et, depth + 1)?;
                    if entries.insert(k, v).is_some() {
                        return Err(ValueError::DuplicateKey {
                            path: self.path.clone(),
                        });
                    }
                    self.path.pop();
                }
                Ok(Value::Map(entries))
            }
            Type::Object(ot) => {
                let n = self.map_len(ty)?;
                let mut attrs = BTreeMap::new();
                for _ in 0..n {
                    let k = self.key()?;
                    self.path.push(PathStep::Attr(k.clone()));
                    let Some(at) = ot.attributes.get(&k) else {
                        return Err(ValueError::UnexpectedAttribute {
                            path: self.path.clone(),
                        });
                    };
                    let v = self.value(at, depth + 1)?;
                    if attrs.insert(k, v).is_some() {
                        return Err(ValueError::DuplicateKey {
                            path: self.path.clone(),
                        });
                    }
                    self.path.pop();
                }
                if let Some(missing) = ot.attributes.keys().find(|k| !attrs.contains_key(*k)) {
                    return Err(ValueError::MissingAttribute {
                        path: self.path.clone().attr(missing),
                    });
                }
                Ok(Value::Object(attrs))
            }
        }
    }

    fn key(&mut self) -> Result<String, ValueError> {
        let m = self.peek()?;
        if !matches!(
            m,
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32
        ) {
            return Err(self.malformed("map keys must be strings"));
        }
        self.string(&Type::String)
    }

    /// `[type JSON, value]`; a null or unknown of dynamic type never reaches
    /// here because those are encoded without the wrapper.
    fn dynamic(&mut self, depth: usize) -> Result<Value, ValueError> {
        if self.array_len(&Type::Dynamic)? != 2 {
            return Err(ValueError::InvalidDynamic {
                path: self.path.clone(),
                reason: "expected a [type, value] array",
            });
        }
        let m = self.marker()?;
        let Some(n) = self.bytes_len(m)? else {
            return Err(ValueError::InvalidDynamic {
                path: self.path.clone(),
                reason: "type must be JSON in a msgpack binary or string",
            });
        };
        let type_json = self.take(n)?;
        let tree = json::parse(type_json, &self.path)?;
        let ty = Type::from_json_tree(&tree, &self.path, depth)?;
        let v = self.value(&ty, depth + 1)?;
        Ok(Value::Dynamic(ty, Box::new(v)))
    }

    fn unknown(&mut self, ty: &Type) -> Result<Value, ValueError> {
        let m = self.marker()?;
        let len = match m {
            Marker::FixExt1 => 1,
            Marker::FixExt2 => 2,
            Marker::FixExt4 => 4,
            Marker::FixExt8 => 8,
            Marker::FixExt16 => 16,
            Marker::Ext8 => self.len8()?,
            Marker::Ext16 => self.len16()?,
            Marker::Ext32 => self.len32()?,
            _ => return Err(self.malformed("expected an extension")),
        };
        let [ext_type] = self.take_array::<1>()?;
        let payload = self.take(len)?;
        // Every extension is an unknown; only type 12 with a body is refined.
        // Unknowns of dynamic type carry no refinements (cty ignores them).
        if ext_type as i8 != EXT_REFINED_UNKNOWN || len <= 1 || matches!(ty, Type::Dynamic) {
            return Ok(Value::unknown());
        }
        if len > MAX_REFINEMENT_PAYLOAD {
            return Err(self.refinement_error("payload too large"));
        }
        let mut sub = Decoder {
            buf: payload,
            pos: 0,
            path: self.path.clone(),
        };
        sub.refinements(ty)
    }

    fn refinement_error(&self, reason: &'static str) -> ValueError {
        ValueError::Refinement {
            path: self.path.clone(),
            reason,
        }
    }

    /// Parses a refinement map. Keys that are unknown, or that do not apply
    /// to `ty`, are skipped: refinements only narrow a value, so ignoring one
    /// is always safe. Bytes after the map are ignored, as cty does.
    fn refinements(&mut self, ty: &Type) -> Result<Value, ValueError> {
        let n = self
            .map_len(ty)
            .map_err(|_| self.refinement_error("payload is not a map"))?;
        let mut r = Refinements::default();
        let mut definitely_null = false;
        for _ in 0..n {
            let key = self
                .integer()?
                .ok_or_else(|| self.refinement_error("keys must be integers"))?;
            let key = i64::try_from(key).unwrap_or(i64::MAX);
            match key {
                REFINE_NULLNESS => match self.marker()? {
                    Marker::True => definitely_null = true,
                    Marker::False => r.not_null = true,
                    _ => return Err(self.refinement_error("nullness must be a boolean")),
                },
                REFINE_STRING_PREFIX if matches!(ty, Type::String) => {
                    let prefix = self
                        .string(ty)
                        .map_err(|_| self.refinement_error("string prefix must be a string"))?;
                    r.string_prefix = Some(prefix);
                }
                REFINE_NUMBER_LOWER | REFINE_NUMBER_UPPER if matches!(ty, Type::Number) => {
                    let bound = self.number_bound()?;
                    if key == REFINE_NUMBER_LOWER {
                        r.number_lower = Some(bound);
                    } else {
                        r.number_upper = Some(bound);
                    }
                }
                REFINE_LENGTH_LOWER | REFINE_LENGTH_UPPER if ty.is_collection() => {
                    let bound = self
                        .integer()?
                        .and_then(|i| u64::try_from(i).ok())
                        .ok_or_else(|| {
                            self.refinement_error("length bound must be a non-negative integer")
                        })?;
                    if key == REFINE_LENGTH_LOWER {
                        r.length_lower = Some(bound);
                    } else {
                        r.length_upper = Some(bound);
                    }
                }
                _ => self.skip(0)?,
            }
        }
        // A "definitely null" unknown is just null; cty collapses it likewise.
        Ok(if definitely_null {
            Value::Null
        } else {
            Value::Unknown(r)
        })
    }

    fn number_bound(&mut self) -> Result<(Number, bool), ValueError> {
        let bad = |d: &Self| d.refinement_error("number bound must be a [number, bool] array");
        if self.array_len(&Type::Number).map_err(|_| bad(self))? != 2 {
            return Err(bad(self));
        }
        // An unknown bound would make refinements recurse into each other.
        if is_ext(self.peek()?) {
            return Err(bad(self));
        }
        match self.value(&Type::Number, 0)? {
            Value::Number(n) => {
                let inclusive = match self.marker()? {
                    Marker::True => true,
                    Marker::False => false,
                    _ => return Err(bad(self)),
                };
                Ok((n, inclusive))
            }
            _ => Err(bad(self)),
        }
    }

    /// Skips one value of any kind.
    fn skip(&mut self, depth: usize) -> Result<(), ValueError> {
        if depth > MAX_DEPTH {
            return Err(self.too_deep());
        }
        let m = self.marker()?;
        let (data, children) = match m {
            Marker::Null | Marker::True | Marker::False | Marker::FixPos(_) | Marker::FixNeg(_) => {
                (0, 0)
            }
            Marker::Reserved => return Err(self.malformed("reserved byte 0xc1")),
            Marker::U8 | Marker::I8 => (1, 0),
            Marker::U16 | Marker::I16 => (2, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
            Marker::FixStr(n) => (usize::from(n), 0),
            Marker::Str8 | Marker::Bin8 => (self.len8()?, 0),
            Marker::Str16 | Marker::Bin16 => (self.len16()?, 0),
            Marker::Str32 | Marker::Bin32 => (self.len32()?, 0),
            Marker::FixExt1 => (2, 0),
            Marker::FixExt2 => (3, 0),
            Marker::FixExt4 => (5, 0),
            Marker::FixExt8 => (9, 0),
            Marker::FixExt16 => (17, 0),
            Marker::Ext8 => (self.len8()? + 1, 0),
            Marker::Ext16 => (self.len16()? + 1, 0),
            Marker::Ext32 => (self.len32()?.saturating_add(1), 0),
            Marker::FixArray(n) => (0, usize::from(n)),
            Marker::Array16 => (0, self.len16()?),
            Marker::Array32 => (0, self.len32()?),
            Marker::FixMap(n) => (0, usize::from(n) * 2),
            Marker::Map16 => (0, self.len16()? * 2),
            Marker::Map32 => (0, self.len32()?.saturating_mul(2)),
        };
        self.take(data)?;
        for _ in 0..children {
            self.skip(depth + 1)?;
        }
        Ok(())
    }
}

/// Writes to a `ByteBuf` cannot fail; this makes that visible to the compiler
/// instead of discarding results.
fn infallible<T>(r: Result<T, ValueWriteError<Infallible>>) {
    match r {
        Ok(_) => {}
        Err(ValueWriteError::InvalidMarkerWrite(e) | ValueWriteError::InvalidDataWrite(e)) => {
            match e {}
        }
    }
}

fn infallible_plain(r: Result<(), Infallible>) {
    match r {
        Ok(()) => {}
        Err(e) => match e {},
    }
}

struct Encoder {
    out: ByteBuf,
    path: AttrPath,
}

impl Encoder {
    fn len32(&self, n: usize) -> Result<u32, ValueError> {
        u32::try_from(n).map_err(|_| ValueError::TooLarge {
            path: self.path.clone(),
        })
    }

    fn str(&mut self, s: &str) -> Result<(), ValueError> {
        self.len32(s.len())?;
        infallible(enc::write_str(&mut self.out, s));
        Ok(())
    }

    fn array_len(&mut self, n: usize) -> Result<(), ValueError> {
        let n = self.len32(n)?;
        infallible(enc::write_array_len(&mut self.out, n));
        Ok(())
    }

    fn map_len(&mut self, n: usize) -> Result<(), ValueError> {
        let n = self.len32(n)?;
        infallible(enc::write_map_len(&mut self.out, n));
        Ok(())
    }

    fn number(&mut self, n: &Number, ty: &Type) -> Result<(), ValueError> {
        // cty's order of preference: exact int64, exact float64, decimal string.
        if let Some(i) = n.as_i64() {
            infallible(enc::write_sint(&mut self.out, i));
        } else if let Some(f) = n.exact_f64() {
            infallible(enc::write_f64(&mut self.out, f));
        } else if n.is_nan() {
            return Err(ValueError::NonConforming {
                path: self.path.clone(),
                expected: ty.friendly_name(),
                found: "NaN",
            });
        } else {
            self.str(&n.to_string())?;
        }
        Ok(())
    }

    fn value(&mut self, v: &Value, ty: &Type, depth: usize) -> Result<(), ValueError> {
        if depth > MAX_DEPTH {
            return Err(ValueError::TooDeep {
                path: self.path.clone(),
                limit: MAX_DEPTH,
            });
        }
        let nonconforming = |path: &AttrPath| ValueError::NonConforming {
            path: path.clone(),
            expected: ty.friendly_name(),
            found: v.kind(),
        };
        match (ty, v) {
            (_, Value::Unknown(r)) => self.unknown(r, ty)?,
            (_, Value::Null) => infallible_plain(enc::write_nil(&mut self.out)),
            (Type::Dynamic, Value::Dynamic(t, inner)) => {
                self.array_len(2)?;
                let type_json = t.to_json_bytes();
                infallible(enc::write_bin(&mut self.out, &type_json));
                self.value(inner, t, depth + 1)?;
            }
            (Type::Bool, Value::Bool(b)) => infallible_plain(enc::write_bool(&mut self.out, *b)),
            (Type::Number, Value::Number(n)) => self.number(n, ty)?,
            (Type::String, Value::String(s)) => self.str(s)?,
            (Type::List(et), Value::List(items)) | (Type::Set(et), Value::Set(items)) => {
                self.array_len(items.len())?;
                for (i, item) in items.iter().enumerate() {
                    self.path.push(PathStep::Index(i as i64));
                    self.value(item, et, depth + 1)?;
                    self.path.pop();
                }
            }
            (Type::Tuple(ets), Value::Tuple(items)) => {
                if ets.len() != items.len() {
                    return Err(ValueError::TupleLength {
                        path: self.path.clone(),
                        expected: ets.len(),
                        found: items.len() as u64,
                    });
                }
                self.array_len(items.len())?;
                for (i, (item, et)) in items.iter().zip(ets).enumerate() {
                    self.path.push(PathStep::Index(i as i64));
                    self.value(item, et, depth + 1)?;
                    self.path.pop();
                }
            }
            (Type::Map(et), Value::Map(entries)) => {
                self.map_len(entries.len())?;
                for (k, item) in entries {
                    self.str(k)?;
                    self.path.push(PathStep::Key(k.clone()));
                    self.value(item, et, depth + 1)?;
                    self.path.pop();
                }
            }
            (Type::Object(ot), Value::Object(attrs)) => {
                check_attribute_names(attrs, ot, &self.path)?;
                self.map_len(ot.attributes.len())?;
                for (name, at) in &ot.attributes {
                    self.path.push(PathStep::Attr(name.clone()));
                    let item = attrs
                        .get(name)
                        .ok_or_else(|| ValueError::MissingAttribute {
                            path: self.path.clone(),
                        })?;
                    self.str(name)?;
                    self.value(item, at, depth + 1)?;
                    self.path.pop();
                }
            }
            _ => return Err(nonconforming(&self.path)),
        }
        Ok(())
    }

    /// Refinements that apply to `ty` go into an ext 12 payload; with none,
    /// the classic `d4 00 00` that every Terraform version understands.
    fn unknown(&mut self, r: &Refinements, ty: &Type) -> Result<(), ValueError> {
        let mut payload = Encoder {
            out: ByteBuf::new(),
            path: self.path.clone(),
        };
        let mut entries = 0u32;
        if !matches!(ty, Type::Dynamic) {
            if r.not_null {
                entries += 1;
                infallible(enc::write_sint(&mut payload.out, REFINE_NULLNESS));
                infallible_plain(enc::write_bool(&mut payload.out, false));
            }
            match ty {
                Type::String => {
                    if let Some(prefix) = r.string_prefix.as_deref().filter(|p| !p.is_empty()) {
                        entries += 1;
                        infallible(enc::write_sint(&mut payload.out, REFINE_STRING_PREFIX));
                        payload.str(prefix)?;
                    }
                }
                Type::Number => {
                    for (key, bound) in [
                        (REFINE_NUMBER_LOWER, &r.number_lower),
                        (REFINE_NUMBER_UPPER, &r.number_upper),
                    ] {
                        if let Some((n, inclusive)) = bound {
                            entries += 1;
                            infallible(enc::write_sint(&mut payload.out, key));
                            payload.array_len(2)?;
                            payload.number(n, ty)?;
                            infallible_plain(enc::write_bool(&mut payload.out, *inclusive));
                        }
                    }
                }
                _ if ty.is_collection() => {
                    for (key, bound) in [
                        (REFINE_LENGTH_LOWER, r.length_lower),
                        (REFINE_LENGTH_UPPER, r.length_upper),
                    ] {
                        if let Some(n) = bound {
                            entries += 1;
                            infallible(enc::write_sint(&mut payload.out, key));
                            infallible(enc::write_uint(&mut payload.out, n));
                        }
                    }
                }
                _ => {}
            }
        }
        if entries == 0 {
            self.out.as_mut_vec().extend_from_slice(&[0xd4, 0, 0]);
            return Ok(());
        }
        let mut body = ByteBuf::new();
        infallible(enc::write_map_len(&mut body, entries));
        body.as_mut_vec().extend_from_slice(payload.out.as_slice());
        let len = self.len32(body.as_slice().len())?;
        infallible(enc::write_ext_meta(&mut self.out, len, EXT_REFINED_UNKNOWN));
        self.out.as_mut_vec().extend_from_slice(body.as_slice());
        Ok(())
    }
}
