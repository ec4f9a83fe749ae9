//! Why an equipment document could not be turned into a response. Every
//! variant is the caller's fault (a 4xx), never ours; Display names the field.

/// A bad equipment document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    /// The body (or its gunzipped form) is larger than we accept.
    #[error("equipment JSON larger than {max} bytes")]
    TooLarge { max: usize },
    /// The body starts like gzip but does not decompress.
    #[error("equipment JSON: bad gzip data: {0}")]
    Gzip(String),
    /// Objects/arrays nested deeper than we accept.
    #[error("equipment JSON nested deeper than {max} levels (at byte {offset})")]
    TooDeep { max: usize, offset: usize },
    /// Malformed JSON or a field of the wrong type/range; `path` is like
    /// `item_equipment_preset_2[3].starforce` (empty when not inside a field).
    #[error("{}", json_message(path, message))]
    Json { path: String, message: String },
    /// Valid JSON, but not a character item-equipment document (`{}`, `[]`,
    /// the basic-character document …): says what is missing.
    #[error("not a character item-equipment document: {0}")]
    NotEquipment(String),
}

fn json_message(path: &str, message: &str) -> String {
    if path.is_empty() || path == "." {
        format!("equipment JSON: {message}")
    } else {
        format!("{path}: {message}")
    }
}

impl CalcError {
    pub(crate) fn from_json(err: serde_path_to_error::Error<serde_json::Error>) -> CalcError {
        let path = err.path().to_string();
        CalcError::Json { path, message: err.into_inner().to_string() }
    }

    /// The field path for `Json` errors (e.g. `item_equipment_preset_1[0].item_name`).
    pub fn path(&self) -> Option<&str> {
        match self {
            CalcError::Json { path, .. } if !path.is_empty() && path != "." => Some(path),
            _ => None,
        }
    }
}
