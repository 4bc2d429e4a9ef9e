//! Strategic merge patch: JSON merge patch that merges lists by key, with upstream's
//! `$patch`, `$retainKeys`, `$setElementOrder/` and `$deleteFromPrimitiveList/` directives.

use serde_json::{Map, Value};

use super::PatchError;
use super::schema::{ListStrategy, Schema};

pub(super) const DIRECTIVE: &str = "$patch";
pub(super) const RETAIN_KEYS: &str = "$retainKeys";
pub(super) const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
pub(super) const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// How [`merge_map`] treats directives and nulls.
#[derive(Debug, Clone, Copy)]
pub(super) struct MergeOptions {
    /// Apply the parallel directives (`$deleteFromPrimitiveList/`, `$retainKeys`,
    /// `$setElementOrder/`) to the original. False when merging two patches into one, where
    /// they are carried over instead.
    pub(super) merge_parallel_list: bool,
    /// Drop a `null` whose key is absent from the original instead of keeping it.
    pub(super) ignore_unmatched_nulls: bool,
}

/// The options the API server applies a patch with.
pub(super) const APPLY_TO_OBJECT: MergeOptions = MergeOptions {
    merge_parallel_list: true,
    ignore_unmatched_nulls: true,
};

/// Applies a strategic merge patch to `original` (both JSON objects), using `schema` (from
/// [`Schema::for_kind`]) to find each list's merge strategy.
///
/// Lists with `patchStrategy:"merge"` merge by their merge key (lists of primitives merge as
/// sets); other lists and all scalars are replaced; `null` deletes a field. Directives:
/// `$patch: replace|delete` on a map, `$patch: replace|delete` as a list element,
/// `$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
/// Elements new to a list are placed in patch order after, or interleaved with, the
/// elements only the server has; `$setElementOrder` overrides that order.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    schema: Schema,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(invalid(format!(
            "the patch must be a JSON object, not {}",
            type_name(patch)
        )));
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => return Err(invalid(format!("cannot patch a {}", type_name(other)))),
    };
    merge_map(original, patch.clone(), schema, APPLY_TO_OBJECT).map(Value::Object)
}

pub(super) fn invalid(message: String) -> PatchError {
    PatchError::InvalidStrategicPatch(message)
}

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

fn same_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Merges `patch` into `original`.
pub(super) fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Schema,
    opts: MergeOptions,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => {
                patch.shift_remove(DIRECTIVE);
                return Ok(patch);
            }
            Some("delete") => return Ok(Map::new()),
            // Upstream rejects `merge` on a map; it is what happens anyway, so accept it.
            Some("merge") => {
                patch.shift_remove(DIRECTIVE);
            }
            _ => {
                return Err(invalid(format!(
                    "unknown patch type: {directive} in map: {}",
                    Value::Object(patch.clone())
                )));
            }
        }
    }

    apply_retain_keys(&mut original, &mut patch, opts)?;
    merge_set_element_order(&mut original, &mut patch, schema, opts)?;

    for (key, patch_value) in patch {
        let mut key = key;
        let mut is_delete_list = false;
        if let Some(list_key) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            if !opts.merge_parallel_list {
                original.insert(key.clone(), patch_value);
                continue;
            }
            if list_key.is_empty() {
                return Err(invalid(
                    "invalid patch format of primitive list".to_string(),
                ));
            }
            key = list_key.to_string();
            is_delete_list = true;
        } else if key.starts_with('$') && key.contains('/') {
            return Err(invalid(format!("unknown directive {key:?}")));
        }

        if patch_value.is_null() {
            original.shift_remove(&key);
            if opts.ignore_unmatched_nulls {
                continue;
            }
        }

        let field_schema = schema.field(&key);
        let Some(original_value) = original.get_mut(&key) else {
            if !is_delete_list {
                let mut value = patch_value;
                if opts.ignore_unmatched_nulls {
                    discard_nulls(&mut value);
                }
                if let Some(v) = remove_directives(value, opts) {
                    original.insert(key, v);
                }
            }
            continue;
        };

        if !same_type(original_value, &patch_value) {
            if !is_delete_list {
                let mut value = patch_value;
                if opts.ignore_unmatched_nulls {
                    discard_nulls(&mut value);
                }
                match remove_directives(value, opts) {
                    Some(v) => *original_value = v,
                    None => {
                        original.shift_remove(&key);
                    }
                }
            }
            continue;
        }

        match (original_value, patch_value) {
            (Value::Object(o), Value::Object(p)) => {
                let o = std::mem::take(o);
                let merged = merge_map(o, p, field_schema, opts)?;
                original.insert(key, Value::Object(merged));
            }
            (Value::Array(o), Value::Array(p)) => {
                let o = std::mem::take(o);
                let merged = merge_list_field(o, p, field_schema, is_delete_list, opts)?;
                original.insert(key, Value::Array(merged));
            }
            (slot, p) => match remove_directives(p, opts) {
                Some(v) => *slot = v,
                None => {
                    original.shift_remove(&key);
                }
            },
        }
    }
    Ok(original)
}

/// Merges a list field according to its patch strategy.
fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Schema,
    is_delete_list: bool,
    opts: MergeOptions,
) -> Result<Vec<Value>, PatchError> {
    match schema.patch_strategy() {
        ListStrategy::Map { keys } => {
            let key = keys.first().copied().unwrap_or_default();
            merge_list(original, patch, schema.elem(), key, is_delete_list, opts)
        }
        ListStrategy::Set => merge_list(original, patch, schema.elem(), "", is_delete_list, opts),
        ListStrategy::Atomic | ListStrategy::Replace if is_delete_list => {
            merge_list(original, patch, schema.elem(), "", is_delete_list, opts)
        }
        ListStrategy::Atomic | ListStrategy::Replace => Ok(patch
            .into_iter()
            .filter_map(|v| remove_directives(v, opts))
            .collect()),
    }
}

/// Whether the list holds objects (true), primitives (false), or nothing (None); lists of
/// lists and mixed lists are rejected.
fn element_kind(lists: &[&[Value]]) -> Result<Option<bool>, PatchError> {
    let mut kind = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let is_map = match v {
            Value::Array(_) => return Err(invalid("lists of lists are not supported".to_string())),
            Value::Object(_) => true,
            _ => false,
        };
        match kind {
            None => kind = Some(is_map),
            Some(k) if k != is_map => {
                return Err(invalid(
                    "a list mixes maps and primitive values".to_string(),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    elem: Schema,
    merge_key: &str,
    is_delete_list: bool,
    opts: MergeOptions,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let Some(is_map) = element_kind(&[&original, &patch])? else {
        return Ok(original);
    };
    let merged = if !is_map {
        if opts.merge_parallel_list && is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut both: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !both.contains(v) {
                both.push(v.clone());
            }
        }
        both
    } else {
        if merge_key.is_empty() {
            return Err(invalid(
                "cannot merge lists of maps without a merge key".to_string(),
            ));
        }
        let (base, plain_patch) = apply_list_special_elements(original.clone(), &patch, merge_key)?;
        let Some(plain_patch) = plain_patch else {
            // `$patch: replace` in the list: the remaining patch elements are the list.
            return Ok(base
                .into_iter()
                .filter_map(|v| remove_directives(v, opts))
                .collect());
        };
        merge_list_of_maps(base, plain_patch, elem, merge_key, opts)?
    };
    let key = (!merge_key.is_empty()).then_some(merge_key);
    order_merged(merged, &patch, &original, key)
}

/// Handles `$patch` elements of a list of maps: `delete` removes the matching elements of
/// `original`; `replace` makes the other patch elements the whole list (returned with
/// `None` as the patch).
fn apply_list_special_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Option<Vec<Value>>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for v in patch {
        let Value::Object(m) = v else {
            return Err(invalid(format!(
                "expected a map in the list, got {}",
                type_name(v)
            )));
        };
        match m.get(DIRECTIVE) {
            None => plain.push(v.clone()),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let Some(key_value) = m.get(merge_key) else {
                        return Err(no_merge_key(v, merge_key));
                    };
                    original.retain(|o| o.get(merge_key) != Some(key_value));
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(invalid(
                        "merging lists cannot yet be specified in the patch".to_string(),
                    ));
                }
                _ => return Err(invalid(format!("unknown patch type: {d} in map: {v}"))),
            },
        }
    }
    if replace {
        Ok((plain, None))
    } else {
        Ok((original, Some(plain)))
    }
}

fn no_merge_key(v: &Value, merge_key: &str) -> PatchError {
    invalid(format!(
        "map: {v} does not contain declared merge key: {merge_key}"
    ))
}

fn merge_list_of_maps(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    elem: Schema,
    merge_key: &str,
    opts: MergeOptions,
) -> Result<Vec<Value>, PatchError> {
    for v in patch {
        let Value::Object(pm) = v else {
            return Err(invalid(format!(
                "expected a map in the list, got {}",
                type_name(&v)
            )));
        };
        let Some(key_value) = pm.get(merge_key) else {
            return Err(no_merge_key(&Value::Object(pm), merge_key));
        };
        let found = original
            .iter()
            .position(|o| o.get(merge_key) == Some(key_value));
        match found {
            Some(i) => {
                let base = match original.get_mut(i).map(std::mem::take) {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                let merged = merge_map(base, pm, elem, opts)?;
                if let Some(slot) = original.get_mut(i) {
                    *slot = Value::Object(merged);
                }
            }
            None => {
                let mut value = Value::Object(pm);
                if opts.ignore_unmatched_nulls {
                    discard_nulls(&mut value);
                }
                original.push(value);
            }
        }
    }
    Ok(original)
}

fn identity<'a>(v: &'a Value, key: Option<&str>) -> Option<&'a Value> {
    match key {
        Some(k) => v.get(k),
        None => Some(v),
    }
}

fn position_in(list: &[Value], v: &Value, key: Option<&str>) -> Option<usize> {
    let id = identity(v, key)?;
    list.iter().position(|x| identity(x, key) == Some(id))
}

/// Puts a merged list in upstream's order: the elements named by the patch (or by
/// `$setElementOrder`) in that order, the elements only the server has in their old order,
/// interleaved where the old order relates them.
fn order_merged(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    let (mut patch_items, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| position_in(patch_order, v, key).is_some());
    let mut to_delete = Vec::new();
    if key.is_some() {
        let (keep, delete): (Vec<Value>, Vec<Value>) = patch_items
            .into_iter()
            .partition(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"));
        patch_items = keep;
        to_delete = delete;
        for v in patch_items.iter().chain(server_only.iter()) {
            if let Some(k) = key
                && v.get(k).is_none()
            {
                return Err(no_merge_key(v, k));
            }
        }
    }
    patch_items.sort_by_key(|v| position_in(patch_order, v, key).unwrap_or(usize::MAX));
    patch_items.extend(to_delete);
    server_only.sort_by_key(|v| position_in(server_order, v, key).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (
                    position_in(server_order, l, key),
                    position_in(server_order, r, key),
                ) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

/// `$retainKeys`: keys of the original that the list omits are cleared. Every key the patch
/// sets must be in the list.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    opts: MergeOptions,
) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    if !opts.merge_parallel_list {
        match original.get(RETAIN_KEYS) {
            Some(existing) if *existing != retain => {
                return Err(invalid(format!(
                    "{existing} and {retain} are not equal: this may happen when calculating the 3-way diff patch"
                )));
            }
            Some(_) => {}
            None => {
                original.insert(RETAIN_KEYS.to_string(), retain);
            }
        }
        return Ok(());
    }
    let Value::Array(list) = retain else {
        return Err(invalid("invalid patch format of retainKeys".to_string()));
    };
    let keys: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
    if keys.len() != list.len() {
        return Err(invalid("invalid patch format of retainKeys".to_string()));
    }
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !keys.contains(&k.as_str()) {
            return Err(invalid(format!(
                "invalid patch format of retainKeys: {k:?} is set but not retained"
            )));
        }
    }
    original.retain(|k, _| keys.contains(&k.as_str()));
    Ok(())
}

/// `$setElementOrder/<list>`: merges that list now and orders it as the directive says.
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Schema,
    opts: MergeOptions,
) -> Result<(), PatchError> {
    let order_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive_key in order_keys {
        let Some(order) = patch.shift_remove(&directive_key) else {
            continue;
        };
        if !opts.merge_parallel_list {
            match original.get(&directive_key) {
                Some(existing) if *existing != order => {
                    return Err(invalid(
                        "invalid patch format of setElementOrder list".to_string(),
                    ));
                }
                Some(_) => {}
                None => {
                    original.insert(directive_key.clone(), order.clone());
                }
            }
        }
        let Value::Array(order) = order else {
            return Err(invalid(
                "invalid patch format of setElementOrder list".to_string(),
            ));
        };
        let list_key = directive_key
            .strip_prefix(SET_ELEMENT_ORDER)
            .unwrap_or_default()
            .to_string();
        if list_key.is_empty() {
            return Err(invalid(
                "invalid patch format of setElementOrder list".to_string(),
            ));
        }
        let field_schema = schema.field(&list_key);
        let merge_key = match field_schema.patch_strategy() {
            ListStrategy::Map { keys } => keys.first().copied(),
            _ => None,
        };
        let original_list = match original.get(&list_key) {
            None => None,
            Some(Value::Array(l)) => Some(l.clone()),
            Some(other) => {
                return Err(invalid(format!(
                    "expected a list for {list_key:?}, got {}",
                    type_name(other)
                )));
            }
        };
        let patch_list = match patch.get(&list_key) {
            None => None,
            Some(Value::Array(l)) => Some(l.clone()),
            Some(other) => {
                return Err(invalid(format!(
                    "expected a list for {list_key:?}, got {}",
                    type_name(other)
                )));
            }
        };
        if let Some(p) = &patch_list {
            validate_order(p, &order, merge_key.unwrap_or_default())?;
        }
        let merged = match (original_list.clone(), patch_list) {
            (None, None) => continue,
            (Some(o), None) => o,
            (None, Some(p)) => p
                .into_iter()
                .filter_map(|v| remove_directives(v, opts))
                .collect(),
            (Some(o), Some(p)) => merge_list_field(o, p, field_schema, false, opts)?,
        };
        let ordered = order_merged(
            merged,
            &order,
            original_list.as_deref().unwrap_or(&[]),
            merge_key,
        )?;
        original.insert(list_key.clone(), Value::Array(ordered));
        patch.shift_remove(&list_key);
    }
    Ok(())
}

/// The patch list's elements (deletions aside) must appear in the order list, in the same
/// relative order.
fn validate_order(patch: &[Value], order: &[Value], merge_key: &str) -> Result<(), PatchError> {
    let key = (!merge_key.is_empty()).then_some(merge_key);
    let relevant: Vec<&Value> = patch
        .iter()
        .filter(|v| !(v.is_object() && v.get(DIRECTIVE).is_some()))
        .collect();
    let mut oi = 0;
    for v in relevant {
        let id = identity(v, key).ok_or_else(|| no_merge_key(v, merge_key))?;
        loop {
            let Some(o) = order.get(oi) else {
                return Err(invalid(format!(
                    "the order in the patch list doesn't match the $setElementOrder list: {}",
                    Value::Array(order.to_vec())
                )));
            };
            oi += 1;
            if identity(o, key) == Some(id) {
                break;
            }
        }
    }
    Ok(())
}

/// Removes `null`s from a value taken whole from the patch.
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(l) => l.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Strips directives from a value taken whole from the patch; `None` when the value itself
/// is a `$patch` directive. When applying to an object, the parallel directives
/// (`$retainKeys`, `$setElementOrder/`, `$deleteFromPrimitiveList/`) go too: they mean
/// nothing without an original and must never be stored.
pub(super) fn remove_directives(v: Value, opts: MergeOptions) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            let out = m
                .into_iter()
                .filter(|(k, _)| {
                    !opts.merge_parallel_list
                        || !(k == RETAIN_KEYS
                            || k.starts_with(SET_ELEMENT_ORDER)
                            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST))
                })
                .filter_map(|(k, v)| remove_directives(v, opts).map(|v| (k, v)))
                .collect();
            Some(Value::Object(out))
        }
        Value::Array(l) => Some(Value::Array(
            l.into_iter()
                .filter_map(|v| remove_directives(v, opts))
                .collect(),
        )),
        other => Some(other),
    }
}
