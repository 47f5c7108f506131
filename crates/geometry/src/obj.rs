//! Not written yet.

use crate::mesh::Mesh;
use crate::{GeometryError, Limits};

pub(crate) fn parse(_bytes: &[u8], _limits: &Limits) -> Result<Mesh, GeometryError> {
    Err(GeometryError::Unsupported("obj"))
}
