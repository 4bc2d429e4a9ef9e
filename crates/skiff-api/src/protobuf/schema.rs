//! The shape of the generated protobuf table: messages, their fields and the kinds of values.

/// What a field holds on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `string`
    S,
    /// `bytes`, base64 in JSON
    B,
    Bool,
    I32,
    I64,
    /// an embedded message, by its index in `MESSAGES`
    M(u16),
}

/// Messages whose JSON form is not an object of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Special {
    None,
    /// `metav1.Time`: `{seconds, nanos}`, an RFC 3339 string with seconds in JSON.
    Time,
    /// `metav1.MicroTime`: an RFC 3339 string with microseconds in JSON.
    MicroTime,
    /// `metav1.Duration`: nanoseconds, Go's duration string in JSON.
    Duration,
    /// `resource.Quantity`: its canonical string.
    Quantity,
    /// `intstr.IntOrString`: `{type, intVal, strVal}`, a number or a string in JSON.
    IntOrString,
    /// `runtime.RawExtension`, `metav1.FieldsV1`: bytes holding JSON (or a nested protobuf object).
    RawJson,
    /// A Go named slice (`type ExtraValue []string`): `{items}` on the wire, an array in JSON.
    Items,
}

#[derive(Debug)]
pub(super) struct Field {
    pub(super) number: u32,
    /// The JSON name; empty for an inlined field.
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    pub(super) label: Label,
    pub(super) flags: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Label {
    Single,
    Repeated,
    /// `map<string, kind>`: entries with the key in field 1 and the value in field 2.
    Map,
}

impl Field {
    /// The field's members go into the enclosing JSON object (`json:",inline"`).
    pub(super) const INLINE: u8 = 1;
    /// Go's JSON encoding leaves the field out when it holds its zero value (non-pointer `omitempty`).
    pub(super) const OMIT_ZERO: u8 = 2;
}

#[derive(Debug)]
pub(super) struct Message {
    pub(super) name: &'static str,
    pub(super) special: Special,
    /// Sorted by number.
    pub(super) fields: &'static [Field],
}

pub(super) const fn f(number: u32, name: &'static str, kind: Kind, flags: u8) -> Field {
    Field {
        number,
        name,
        kind,
        label: Label::Single,
        flags,
    }
}

pub(super) const fn rep(number: u32, name: &'static str, kind: Kind, flags: u8) -> Field {
    Field {
        number,
        name,
        kind,
        label: Label::Repeated,
        flags,
    }
}

pub(super) const fn map(number: u32, name: &'static str, kind: Kind, flags: u8) -> Field {
    Field {
        number,
        name,
        kind,
        label: Label::Map,
        flags,
    }
}
