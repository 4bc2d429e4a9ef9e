//! kubectl's three-way merge for client-side apply (`CreateThreeWayMergePatch`): the
//! strategic merge patch that turns the live object into the new configuration, deleting
//! only what the previous configuration set.

use serde_json::{Map, Value};

use super::PatchError;
use super::schema::{ListStrategy, Schema};
use super::strategic::{
    DELETE_FROM_PRIMITIVE_LIST, DIRECTIVE, MergeOptions, RETAIN_KEYS, SET_ELEMENT_ORDER, merge_map,
};

#[derive(Debug, Clone, Copy, Default)]
struct DiffOptions {
    set_element_order: bool,
    ignore_changes_and_additions: bool,
    ignore_deletions: bool,
    build_retain_keys: bool,
}

/// Computes the patch `kubectl apply` sends: additions and changes from `current` (the live
/// object) to `modified` (the new configuration), plus deletions of the fields that
/// `original` (the last-applied configuration, `None` the first time) had and `modified`
/// dropped. Lists merge by their merge keys (`$patch: delete` elements,
/// `$deleteFromPrimitiveList/`, `$setElementOrder/`), `retainKeys` fields get `$retainKeys`.
///
/// As kubectl does, pass as `modified` the new configuration carrying its own
/// `kubectl.kubernetes.io/last-applied-configuration` annotation, so that the patch
/// records it. With [`Schema::unknown`] (custom resources) the result is kubectl's JSON
/// merge patch.
pub fn three_way_merge(
    original_last_applied: Option<&Value>,
    modified: &Value,
    current: &Value,
    schema: Schema,
) -> Result<Value, PatchError> {
    let empty = Map::new();
    let as_map = |v: Option<&Value>, what: &str| -> Result<Map<String, Value>, PatchError> {
        match v {
            None | Some(Value::Null) => Ok(empty.clone()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(_) => Err(PatchError::InvalidStrategicPatch(format!(
                "the {what} configuration must be a JSON object"
            ))),
        }
    };
    let original = as_map(original_last_applied, "last-applied")?;
    let modified = as_map(Some(modified), "new")?;
    let current = as_map(Some(current), "live")?;

    let delta = diff_maps(
        &current,
        &modified,
        schema,
        DiffOptions {
            ignore_deletions: true,
            set_element_order: true,
            ..Default::default()
        },
    )?;
    let deletions = diff_maps(
        &original,
        &modified,
        schema,
        DiffOptions {
            set_element_order: true,
            ignore_changes_and_additions: true,
            ..Default::default()
        },
    )?;
    let merge_patches = MergeOptions {
        merge_parallel_list: false,
        ignore_unmatched_nulls: false,
    };
    merge_map(deletions, delta, schema, merge_patches).map(Value::Object)
}

fn diff_maps(
    original: &Map<String, Value>,
    modified: &Map<String, Value>,
    schema: Schema,
    opts: DiffOptions,
) -> Result<Map<String, Value>, PatchError> {
    let mut patch = Map::new();
    let mut retain_keys: Vec<String> = Vec::new();
    for (key, mv) in modified {
        if opts.build_retain_keys && !mv.is_null() {
            retain_keys.push(key.clone());
        }
        let Some(ov) = original.get(key) else {
            if !opts.ignore_changes_and_additions {
                patch.insert(key.clone(), mv.clone());
            }
            continue;
        };
        if key == DIRECTIVE {
            if ov != mv {
                patch.insert(key.clone(), mv.clone());
            }
            continue;
        }
        match (ov, mv) {
            (Value::Object(om), Value::Object(mm)) => {
                let fs = schema.field(key);
                let sub = diff_maps(
                    om,
                    mm,
                    fs,
                    DiffOptions {
                        build_retain_keys: fs.retain_keys(),
                        ..opts
                    },
                )?;
                if !sub.is_empty() {
                    patch.insert(key.clone(), Value::Object(sub));
                }
            }
            (Value::Array(ol), Value::Array(ml)) => {
                diff_list_field(key, ol, ml, schema.field(key), &mut patch, opts)?;
            }
            _ => {
                if !opts.ignore_changes_and_additions && ov != mv {
                    patch.insert(key.clone(), mv.clone());
                }
            }
        }
    }
    if !opts.ignore_deletions {
        for key in original.keys() {
            if !modified.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
    }
    let original_has_more = original
        .iter()
        .any(|(k, v)| !v.is_null() && !modified.contains_key(k));
    if !retain_keys.is_empty() && (!patch.is_empty() || original_has_more) {
        retain_keys.sort();
        patch.insert(
            RETAIN_KEYS.to_string(),
            Value::Array(retain_keys.into_iter().map(Value::String).collect()),
        );
    }
    Ok(patch)
}

fn diff_list_field(
    key: &str,
    original: &[Value],
    modified: &[Value],
    schema: Schema,
    patch: &mut Map<String, Value>,
    opts: DiffOptions,
) -> Result<(), PatchError> {
    let merge_key = match schema.patch_strategy() {
        ListStrategy::Map { keys } => Some(keys.first().copied().unwrap_or_default()),
        ListStrategy::Set => Some(""),
        ListStrategy::Atomic | ListStrategy::Replace => None,
    };
    let Some(merge_key) = merge_key else {
        if !opts.ignore_changes_and_additions && original != modified {
            patch.insert(key.to_string(), Value::Array(modified.to_vec()));
        }
        return Ok(());
    };
    let opts = DiffOptions {
        build_retain_keys: schema.retain_keys(),
        ..opts
    };
    let (add, delete, order) = diff_lists(original, modified, schema.elem(), merge_key, opts)?;
    if !add.is_empty() {
        patch.insert(key.to_string(), Value::Array(add));
    }
    if !delete.is_empty() {
        patch.insert(
            format!("{DELETE_FROM_PRIMITIVE_LIST}{key}"),
            Value::Array(delete),
        );
    }
    if !order.is_empty() {
        patch.insert(format!("{SET_ELEMENT_ORDER}{key}"), Value::Array(order));
    }
    Ok(())
}

type ListDiff = (Vec<Value>, Vec<Value>, Vec<Value>);

fn diff_lists(
    original: &[Value],
    modified: &[Value],
    elem: Schema,
    merge_key: &str,
    opts: DiffOptions,
) -> Result<ListDiff, PatchError> {
    if original.is_empty() {
        if modified.is_empty() || opts.ignore_changes_and_additions {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        }
        return Ok((modified.to_vec(), Vec::new(), Vec::new()));
    }
    let maps = original.iter().chain(modified).any(Value::is_object);
    if original.iter().chain(modified).any(Value::is_array) {
        return Err(PatchError::InvalidStrategicPatch(
            "lists of lists are not supported".to_string(),
        ));
    }
    if maps {
        if merge_key.is_empty() {
            return Err(PatchError::InvalidStrategicPatch(
                "cannot diff lists of maps without a merge key".to_string(),
            ));
        }
        let key_of = |v: &Value| -> Result<Value, PatchError> {
            v.get(merge_key).cloned().ok_or_else(|| {
                PatchError::InvalidStrategicPatch(format!(
                    "map: {v} does not contain declared merge key: {merge_key}"
                ))
            })
        };
        let mut patch_list = Vec::new();
        for mv in modified {
            let k = key_of(mv)?;
            let found = original.iter().find(|o| o.get(merge_key) == Some(&k));
            match (found, mv) {
                (Some(Value::Object(om)), Value::Object(mm)) => {
                    let mut sub = diff_maps(om, mm, elem, opts)?;
                    if !sub.is_empty() {
                        sub.insert(merge_key.to_string(), k);
                        patch_list.push(Value::Object(sub));
                    }
                }
                (Some(_), _) => {
                    return Err(PatchError::InvalidStrategicPatch(
                        "a list mixes maps and primitive values".to_string(),
                    ));
                }
                (None, _) => {
                    if !opts.ignore_changes_and_additions {
                        patch_list.push(mv.clone());
                    }
                }
            }
        }
        let mut seen_deleted: Vec<Value> = Vec::new();
        for ov in original {
            let k = key_of(ov)?;
            let still_there = modified.iter().any(|m| m.get(merge_key) == Some(&k));
            if !still_there && !opts.ignore_deletions && !seen_deleted.contains(&k) {
                seen_deleted.push(k.clone());
                let mut d = Map::new();
                d.insert(merge_key.to_string(), k);
                d.insert(DIRECTIVE.to_string(), Value::String("delete".into()));
                patch_list.push(Value::Object(d));
            }
        }
        let order_same = original.len() == modified.len()
            && original
                .iter()
                .zip(modified)
                .all(|(o, m)| o.get(merge_key) == m.get(merge_key));
        let mut order = Vec::new();
        if opts.set_element_order
            && ((!opts.ignore_changes_and_additions && (!patch_list.is_empty() || !order_same))
                || (!opts.ignore_deletions && !patch_list.is_empty()))
        {
            for m in modified {
                let mut o = Map::new();
                o.insert(merge_key.to_string(), key_of(m)?);
                order.push(Value::Object(o));
            }
        }
        Ok((patch_list, Vec::new(), order))
    } else {
        let mut add = Vec::new();
        if !opts.ignore_changes_and_additions {
            for m in modified {
                if !original.contains(m) && !add.contains(m) {
                    add.push(m.clone());
                }
            }
        }
        let mut delete = Vec::new();
        if !opts.ignore_deletions {
            for o in original {
                if !modified.contains(o) && !delete.contains(o) {
                    delete.push(o.clone());
                }
            }
        }
        let order = if opts.set_element_order
            && ((!opts.ignore_deletions && !delete.is_empty())
                || (!opts.ignore_changes_and_additions && original != modified))
        {
            modified.to_vec()
        } else {
            Vec::new()
        };
        Ok((add, delete, order))
    }
}
