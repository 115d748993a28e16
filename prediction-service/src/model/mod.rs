//! The model: an ONNX file read with the ONNX protobuf types, its graph checked, its tree
//! ensemble turned into the evaluator of [`forest`], and a self-check before it serves.

pub mod forest;
pub mod onnx;
pub mod watch;

use chrono::{DateTime, Utc};
use prost::Message;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::request::{FEATURES, Features};
use forest::Forest;

/// Why a model file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not an ONNX model: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("unsupported graph: {0}")]
    Graph(String),
    #[error(transparent)]
    Forest(#[from] forest::ForestError),
    #[error("self-check failed: {0}")]
    SelfCheck(String),
}

/// What `GET /model` and the metrics say about the loaded model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelInfo {
    /// The model's `name` metadata property (else the graph's name).
    pub name: String,
    /// The model's `version` metadata property (else its model_version).
    pub version: String,
    /// sha256 of the file, hex.
    pub sha256: String,
    /// Input features, in order.
    pub features: Vec<&'static str>,
    /// Class labels, in the order of `probabilities`.
    pub classes: Vec<i64>,
    pub trees: usize,
    pub nodes: usize,
    pub loaded_at: DateTime<Utc>,
}

/// The answer of the model for one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub class: i64,
    pub probabilities: Vec<f64>,
}

/// A loaded, checked model.
#[derive(Debug)]
pub struct Model {
    pub info: ModelInfo,
    forest: Forest,
}

impl Model {
    /// Decodes, checks and self-checks an ONNX file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        let proto = onnx::ModelProto::decode(bytes)?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| ModelError::Graph("the model has no graph".into()))?;
        let node = ensemble_node(graph)?;
        let forest = Forest::from_attributes(&node.attribute, FEATURES.len())?;
        let property = |key: &str| {
            proto
                .metadata_props
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.value.clone())
        };
        let info = ModelInfo {
            name: property("name").unwrap_or_else(|| graph.name.clone()),
            version: property("version").unwrap_or_else(|| proto.model_version.to_string()),
            sha256: hex::encode(Sha256::digest(bytes)),
            features: FEATURES.to_vec(),
            classes: forest.classes().to_vec(),
            trees: forest.trees(),
            nodes: forest.node_count(),
            loaded_at: Utc::now(),
        };
        let model = Self { info, forest };
        model.self_check()?;
        Ok(model)
    }

    /// Reads and loads the file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    /// Predicts every row in one pass over the forest.
    pub fn predict(&self, rows: &[Features]) -> Vec<Prediction> {
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.values()).collect();
        let mut scores = Vec::new();
        self.forest.scores(&flat, &mut scores);
        let k = self.forest.classes().len();
        scores
            .chunks_exact(k)
            .map(|row| Prediction {
                class: self.forest.classes()[Forest::argmax(row)],
                probabilities: row.to_vec(),
            })
            .collect()
    }

    /// Raw evaluation of row-major `rows` into `scores`, for benchmarks.
    pub fn scores(&self, rows: &[f32], scores: &mut Vec<f64>) {
        self.forest.scores(rows, scores);
    }

    /// A model that serves must answer a probability distribution over its classes for
    /// typical and extreme rows.
    fn self_check(&self) -> Result<(), ModelError> {
        let probes = [
            Features::from_array([
                13.0, 2.3, 2.4, 19.5, 100.0, 2.3, 2.0, 0.36, 1.6, 5.1, 0.96, 2.6, 750.0,
            ]),
            Features::from_array([0.0; 13]),
            Features::from_array([1.0e6; 13]),
        ];
        for (i, prediction) in self.predict(&probes).iter().enumerate() {
            let sum: f64 = prediction.probabilities.iter().sum();
            let valid = prediction
                .probabilities
                .iter()
                .all(|p| p.is_finite() && (-1e-6..=1.0 + 1e-6).contains(p));
            if !valid || (sum - 1.0).abs() > 1e-4 {
                return Err(ModelError::SelfCheck(format!(
                    "probe {i}: probabilities {:?} are not a distribution",
                    prediction.probabilities
                )));
            }
        }
        Ok(())
    }
}

/// The graph must be one `TreeEnsembleClassifier` from a float input of 13 columns to
/// the label and probability outputs.
fn ensemble_node(graph: &onnx::GraphProto) -> Result<&onnx::NodeProto, ModelError> {
    let refuse = |why: String| Err(ModelError::Graph(why));
    let [node] = graph.node.as_slice() else {
        return refuse(format!(
            "{} nodes, expected one TreeEnsembleClassifier",
            graph.node.len()
        ));
    };
    if node.op_type != "TreeEnsembleClassifier" || node.domain != "ai.onnx.ml" {
        return refuse(format!(
            "operator {}:{} is not supported",
            node.domain, node.op_type
        ));
    }
    let [input] = graph.input.as_slice() else {
        return refuse(format!("{} inputs, expected one", graph.input.len()));
    };
    let tensor = input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
    let columns = tensor
        .and_then(|t| t.shape.as_ref())
        .and_then(|s| s.dim.get(1))
        .and_then(|d| d.dim_value);
    if tensor.map(|t| t.elem_type) != Some(onnx::FLOAT) || columns != Some(FEATURES.len() as i64) {
        return refuse(format!(
            "input {} must be float32 [N, {}]",
            input.name,
            FEATURES.len()
        ));
    }
    if node.input.first() != Some(&input.name) || node.output.len() != 2 {
        return refuse(
            "the ensemble must read the graph input and give label and probabilities".into(),
        );
    }
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    if !node.output.iter().all(|o| outputs.contains(&o.as_str())) {
        return refuse("the ensemble's outputs must be the graph outputs".into());
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_model() {
        let error = Model::from_bytes(b"not a model at all").expect_err("refused");
        assert!(
            matches!(error, ModelError::Decode(_) | ModelError::Graph(_)),
            "{error}"
        );
    }

    #[test]
    fn an_empty_file_has_no_graph() {
        let error = Model::from_bytes(b"").expect_err("refused");
        assert!(error.to_string().contains("no graph"), "{error}");
    }
}
