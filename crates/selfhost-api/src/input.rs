//! Request bodies as the reference server binds them: member names in any case, numbers also
//! as strings, errors as model state keyed by the C# property name.

use serde_json::{Map, Value};

use crate::json::ApiError;

/// A JSON object whose members are looked up ignoring case.
pub(crate) struct Body(Map<String, Value>);

impl Body {
    /// Parses a JSON object body. Anything else is model state invalid (`$`), as ASP.NET
    /// answers an unreadable body.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::invalid_model(
                "$",
                "The JSON value could not be converted to the request model.",
            )),
            Err(e) => Err(ApiError::invalid_model(
                "$",
                format!("The request body is not valid JSON: {e}."),
            )),
        }
    }

    /// A member, ignoring case (the exact name first).
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .get(name)
            .or_else(|| {
                self.0
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .filter(|v| !v.is_null())
    }

    /// A string member; a non-string is a binding error on `field`.
    pub(crate) fn string(&self, name: &str, field: &str) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(not_convertible(field, "System.String")),
        }
    }

    /// A boolean member.
    pub(crate) fn bool(&self, name: &str, field: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(not_convertible(field, "System.Boolean")),
        }
    }

    /// An integer member, given as a number or a string of digits.
    pub(crate) fn integer(&self, name: &str, field: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| not_convertible(field, "System.Int32")),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| not_convertible(field, "System.Int32")),
            Some(_) => Err(not_convertible(field, "System.Int32")),
        }
    }

    /// A nested object member.
    pub(crate) fn object(&self, name: &str) -> Option<Body> {
        match self.get(name) {
            Some(Value::Object(map)) => Some(Self(map.clone())),
            _ => None,
        }
    }

    /// A GUID member.
    pub(crate) fn guid(&self, name: &str, field: &str) -> Result<Option<uuid::Uuid>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| not_convertible(field, "System.Guid")),
            Some(_) => Err(not_convertible(field, "System.Guid")),
        }
    }
}

fn not_convertible(field: &str, to: &str) -> ApiError {
    ApiError::invalid_model(
        field,
        format!("The JSON value could not be converted to {to}."),
    )
}

/// `[Required]`'s message.
pub(crate) fn required(field: &str) -> ApiError {
    ApiError::invalid_model(field, format!("The {field} field is required."))
}

/// `[StringLength(n)]`'s message.
pub(crate) fn too_long(field: &str, max: usize) -> ApiError {
    ApiError::invalid_model(
        field,
        format!("The field {field} must be a string with a maximum length of {max}."),
    )
}
