//! Kubernetes Events for the transitions a user cares about.
//!
//! Which events to emit is decided by [`transitions`], a pure function of
//! the old status, the new status and what apply did; only a real change
//! produces one, so a steady-state reconcile emits nothing (events are API
//! writes too). [`publish`] sends them through kube's `Recorder`, which
//! folds repeats into a series.

use crate::apply::Applied;
use crate::desired::ChildKey;
use cachebridge_api::v1alpha1::condition::{ALL, READY};
use cachebridge_api::v1alpha1::{CacheBridge, CacheBridgeStatus};
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

/// An event to emit, before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: String,
    pub action: String,
    pub message: String,
}

impl Note {
    fn normal(reason: &str, action: &str, message: String) -> Self {
        Note {
            warning: false,
            reason: reason.into(),
            action: action.into(),
            message,
        }
    }

    fn warning(reason: &str, action: &str, message: String) -> Self {
        Note {
            warning: true,
            ..Note::normal(reason, action, message)
        }
    }
}

/// The events that the change from `old` to `new` (and `applied`) deserves.
pub fn transitions(
    old: Option<&CacheBridgeStatus>,
    new: &CacheBridgeStatus,
    applied: Option<&Applied>,
) -> Vec<Note> {
    let mut notes = Vec::new();
    if let Some(applied) = applied {
        notes.extend(child_notes(applied));
    }
    for type_ in ALL {
        let before = old.and_then(|o| o.condition(type_));
        let Some(after) = new.condition(type_) else {
            continue;
        };
        let same = before.is_some_and(|b| b.status == after.status && b.reason == after.reason);
        if same {
            continue;
        }
        match (type_, after.status.as_str(), after.reason.as_str()) {
            (READY, _, "InvalidSpec") => notes.push(Note::warning(
                "InvalidSpec",
                "Validate",
                after.message.clone(),
            )),
            (READY, "True", _) => {
                notes.push(Note::normal("Ready", "Reconcile", after.message.clone()))
            }
            (READY, _, _) if before.is_some_and(|b| b.status == "True") => notes.push(
                Note::warning("NotReady", "Reconcile", after.message.clone()),
            ),
            // A part that was ready and is not any more.
            (_, "False", _) if before.is_some_and(|b| b.status == "True") => notes.push(
                Note::warning(&format!("{type_}Lost"), "Reconcile", after.message.clone()),
            ),
            _ => {}
        }
    }
    notes
}

fn child_notes(applied: &Applied) -> Vec<Note> {
    let list = |keys: &[ChildKey]| {
        keys.iter()
            .map(|k| format!("{:?} {}", k.kind, k.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut notes = Vec::new();
    if !applied.created.is_empty() {
        notes.push(Note::normal(
            "Created",
            "Apply",
            format!("created {}", list(&applied.created)),
        ));
    }
    if !applied.updated.is_empty() {
        notes.push(Note::normal(
            "Updated",
            "Apply",
            format!("updated {}", list(&applied.updated)),
        ));
    }
    if !applied.deleted.is_empty() {
        notes.push(Note::normal(
            "Deleted",
            "Apply",
            format!(
                "deleted what the spec no longer asks for: {}",
                list(&applied.deleted)
            ),
        ));
    }
    notes
}

/// Sends the events; a failure is logged, never fails the reconcile.
pub async fn publish(recorder: &Recorder, cb: &CacheBridge, notes: Vec<Note>) {
    let reference = cb.object_ref(&());
    for note in notes {
        let event = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason,
            // The API caps notes at 1 kB.
            note: Some(note.message.chars().take(1000).collect()),
            action: note.action,
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "cannot publish an event");
        }
    }
}
