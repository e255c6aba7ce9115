//! The three screens of the review (queue, cluster, merges) and the [`Effect`]s they answer
//! with. A screen owns its state and turns a command, or the answer to work it asked for, into
//! state changes and effects; it does no I/O and spawns nothing. `App` runs the effects (store
//! calls, spawned tasks, switching screens, opening overlays) and routes the answers back. The
//! rules about clusters are the domain's (`review::ReviewDraft`, `store::clusters`): a screen
//! calls them and makes none of its own.

pub mod cluster;
pub mod merges;
pub mod queue;

use crate::domain::model::ObjectType;
use crate::store::decisions::{NewDecision, Verdict};
use crate::store::queue::QueueQuery;

use super::overlays::{Overlay, PromptKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Queue,
    Cluster,
    Merges,
}

/// What a screen may read of the app while it answers a command.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The terminal's height in rows: page keys move by what is on screen.
    pub height: u16,
    /// Who decides.
    pub steward: &'a str,
}

/// What a screen or an overlay asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Read a page of the queue; the answer goes to the queue screen.
    LoadPage(PageRequest),
    /// Read a cluster and show it; `index` is its place in the queue, when it has one.
    OpenCluster {
        id: i64,
        index: Option<u64>,
    },
    /// Open the cluster after place `index` of the queue (without one: back to the queue).
    OpenNext(Option<u64>),
    /// Write a decision the review draft built; `advance` opens the next cluster once saved.
    Decide {
        decision: NewDecision,
        index: Option<u64>,
        advance: bool,
    },
    /// Undo the steward's last decision.
    Undo,
    LoadMerges,
    /// Queue the failed merge job again.
    Retry(i64),
    /// Read the lineage of a record, for its overlay.
    Lineage {
        id: String,
        object: ObjectType,
    },
    /// `A`: run the approved merges, asking first unless configured not to.
    AskToApply,
    /// The steward said yes: run the approved merges.
    RunMerges,
    /// Reject or defer every cluster `query` shows, once the steward has said yes to how
    /// many that is.
    AskBulk {
        verdict: Verdict,
        query: QueueQuery,
    },
    /// The steward said yes: decide these clusters.
    RunBulk {
        verdict: Verdict,
        ids: Vec<i64>,
    },
    /// Switch to a screen; the queue reloads, the merges load.
    Show(Screen),
    /// Leave the cluster screen for the queue as it is loaded.
    CloseCluster,
    Open(Overlay),
    /// A prompt's text, submitted.
    Submit(PromptKind, String),
    /// A prompt's text as it stands while it is typed.
    Typed(PromptKind, String),
    Say(String),
    Fail(String),
    /// Say, unless an error is on show: it stays readable.
    SayUnlessError(String),
    Quit,
}

/// A page of the queue to read. The answer carries `generation`, so only the latest request
/// counts.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    pub generation: u64,
    pub query: QueueQuery,
    /// Open the cluster at this place once the page is in.
    pub open_index: Option<u64>,
    /// Put the cursor on this cluster, if the page holds it.
    pub select_id: Option<i64>,
}
