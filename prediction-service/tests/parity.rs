//! The committed model evaluated by the service's own evaluator agrees with scikit-learn
//! on every row of the wine data (models/wine-forest-parity.json, written by
//! models/train.py) and with tract, a second ONNX runtime (scripts/tract-parity.sh), and
//! models the evaluator does not support are refused by name.

mod helpers;

use prediction_service::model::onnx::{AttributeProto, ModelProto};
use prediction_service::model::{Model, ModelError};
use prediction_service::request::Features;
use prost::Message;

use helpers::{TractRow, model_bytes, parity_rows, tract_predictions};

#[test]
fn every_row_matches_scikit_learn() {
    let model = Model::from_bytes(&model_bytes()).expect("the committed model loads");
    let (sha256, rows) = parity_rows();
    assert_eq!(
        model.info.sha256, sha256,
        "the fixture was made from another model file"
    );
    assert_eq!(rows.len(), 178, "the whole wine data set");
    let features: Vec<Features> = rows.iter().map(|r| r.features).collect();
    let predictions = model.predict(&features);
    let mut worst = 0.0f64;
    for (i, (row, prediction)) in rows.iter().zip(&predictions).enumerate() {
        assert_eq!(prediction.class, row.class, "row {i}: class");
        for (ours, theirs) in prediction.probabilities.iter().zip(&row.probabilities) {
            worst = worst.max((ours - theirs).abs());
        }
    }
    assert!(
        worst <= 1e-5,
        "largest probability difference {worst:e} is over 1e-5"
    );
    eprintln!("178 rows: classes equal, largest probability difference {worst:e}");
}

/// The same rows through tract: the class equal and every probability within 1e-5, each
/// row that differs named.
#[test]
fn every_row_matches_tract() {
    let Some((sha256, tract)) = tract_predictions() else {
        return;
    };
    let model = Model::from_bytes(&model_bytes()).expect("the committed model loads");
    assert_eq!(
        model.info.sha256, sha256,
        "tract's predictions were made from another model file"
    );
    let (_, rows) = parity_rows();
    assert_eq!(tract.len(), rows.len(), "tract answered every row");
    let features: Vec<Features> = rows.iter().map(|r| r.features).collect();
    let predictions = model.predict(&features);
    let mut worst = 0.0f64;
    let mut differences = Vec::new();
    for (i, (ours, theirs)) in predictions.iter().zip(&tract).enumerate() {
        let difference = largest_difference(&ours.probabilities, theirs);
        worst = worst.max(difference);
        if ours.class != theirs.class
            || ours.probabilities.len() != theirs.probabilities.len()
            || difference > 1e-5
        {
            differences.push(format!(
                "row {i}: ours class {} {:?}, tract class {} {:?}",
                ours.class, ours.probabilities, theirs.class, theirs.probabilities
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} rows differ from tract:\n{}",
        differences.len(),
        rows.len(),
        differences.join("\n")
    );
    eprintln!(
        "{} rows: classes equal to tract's, largest probability difference {worst:e}",
        rows.len()
    );
}

/// The largest gap between two rows' probabilities; a NaN counts as infinitely far, where
/// `f64::max` would drop it.
fn largest_difference(ours: &[f64], tract: &TractRow) -> f64 {
    ours.iter()
        .zip(&tract.probabilities)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, |worst, d| {
            if d.is_nan() {
                f64::INFINITY
            } else {
                worst.max(d)
            }
        })
}

/// The general walk (any branch mode) gives what the all-`BRANCH_LEQ` form gives: the
/// same forest written with `BRANCH_GT` and swapped children.
#[test]
fn the_general_walk_agrees_with_the_leq_form() {
    let mut proto = ModelProto::decode(model_bytes().as_slice()).expect("decode");
    let node = &mut proto.graph.as_mut().expect("graph").node[0];
    let find = |name: &str| {
        node.attribute
            .iter()
            .position(|a| a.name == name)
            .expect(name)
    };
    let (modes, yes, no) = (
        find("nodes_modes"),
        find("nodes_truenodeids"),
        find("nodes_falsenodeids"),
    );
    let (true_ids, false_ids) = (
        node.attribute[yes].ints.clone(),
        node.attribute[no].ints.clone(),
    );
    node.attribute[yes].ints = false_ids;
    node.attribute[no].ints = true_ids;
    for mode in &mut node.attribute[modes].strings {
        if mode.as_slice() == b"BRANCH_LEQ" {
            *mode = b"BRANCH_GT".to_vec();
        }
    }
    let general = Model::from_bytes(&proto.encode_to_vec()).expect("BRANCH_GT model");
    let leq = Model::from_bytes(&model_bytes()).expect("model");
    let (_, rows) = parity_rows();
    let features: Vec<Features> = rows.iter().map(|r| r.features).collect();
    assert_eq!(general.predict(&features), leq.predict(&features));
}

#[test]
fn one_row_at_a_time_equals_the_batch() {
    let model = Model::from_bytes(&model_bytes()).expect("model");
    let (_, rows) = parity_rows();
    let features: Vec<Features> = rows.iter().map(|r| r.features).collect();
    let batch = model.predict(&features);
    for (row, expected) in features.iter().zip(&batch) {
        assert_eq!(&model.predict(std::slice::from_ref(row))[0], expected);
    }
}

#[test]
fn the_model_describes_itself() {
    let model = Model::from_bytes(&model_bytes()).expect("model");
    assert_eq!(model.info.name, "wine-forest");
    assert_eq!(model.info.version, "1");
    assert_eq!(model.info.classes, vec![0, 1, 2]);
    assert_eq!(model.info.trees, 100);
    assert_eq!(model.info.features.len(), 13);
}

/// The committed model with the ensemble node's attribute `name` changed by `edit`.
fn edited(name: &str, edit: impl FnOnce(&mut AttributeProto)) -> Vec<u8> {
    let mut proto = ModelProto::decode(model_bytes().as_slice()).expect("decode");
    let node = &mut proto.graph.as_mut().expect("graph").node[0];
    let attribute = match node.attribute.iter_mut().find(|a| a.name == name) {
        Some(attribute) => attribute,
        None => {
            node.attribute.push(AttributeProto {
                name: name.to_owned(),
                ..AttributeProto::default()
            });
            node.attribute.last_mut().expect("pushed")
        }
    };
    edit(attribute);
    proto.encode_to_vec()
}

fn refusal(bytes: &[u8]) -> String {
    match Model::from_bytes(bytes) {
        Ok(_) => panic!("the model was accepted"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn the_subset_of_onnx_read_round_trips() {
    let bytes = edited("post_transform", |_| {});
    let model = Model::from_bytes(&bytes).expect("re-encoded model loads");
    assert_eq!(model.info.trees, 100);
}

#[test]
fn unsupported_attributes_are_refused_by_name() {
    let softmax = edited("post_transform", |a| a.s = b"SOFTMAX".to_vec());
    assert!(refusal(&softmax).contains("post_transform SOFTMAX is not supported"));
    let base = edited("base_values", |a| a.floats = vec![0.5, 0.0, 0.0]);
    assert!(refusal(&base).contains("base_values"));
    let strings = edited("classlabels_strings", |a| a.strings = vec![b"a".to_vec()]);
    assert!(refusal(&strings).contains("string class labels"));
    let mode = edited("nodes_modes", |a| a.strings[0] = b"BRANCH_MAYBE".to_vec());
    assert!(refusal(&mode).contains("unknown node mode BRANCH_MAYBE"));
}

#[test]
fn broken_trees_are_refused() {
    let proto = ModelProto::decode(model_bytes().as_slice()).expect("decode");
    let graph = proto.graph.expect("graph");
    let modes = &graph.node[0]
        .attribute
        .iter()
        .find(|a| a.name == "nodes_modes")
        .expect("modes")
        .strings;
    let split = (1..modes.len())
        .find(|&i| modes[i] != b"LEAF")
        .expect("a split below a root");
    let cycle = edited("nodes_truenodeids", |a| a.ints[split] = 0);
    let error = refusal(&cycle);
    assert!(error.contains("TreeEnsembleClassifier"), "{error}");
    let feature = edited("nodes_featureids", |a| a.ints[0] = 13);
    assert!(refusal(&feature).contains("reads feature 13 of 13"));
    let short = edited("class_weights", |a| {
        a.floats.pop();
    });
    assert!(refusal(&short).contains("differ in length"));
}

#[test]
fn weights_that_do_not_sum_to_one_fail_the_self_check() {
    let doubled = edited("class_weights", |a| {
        a.floats.iter_mut().for_each(|w| *w *= 2.0)
    });
    let error = Model::from_bytes(&doubled).expect_err("refused");
    assert!(matches!(error, ModelError::SelfCheck(_)), "{error}");
}

#[test]
fn a_truncated_file_is_refused() {
    let bytes = model_bytes();
    let error = refusal(&bytes[..bytes.len() / 2]);
    assert!(error.contains("not an ONNX model"), "{error}");
}
