//! The one error type of the `cib-transforms` crate.

/// Everything that can go wrong in parsing, scoping, transforming, diffing or
/// merging a CIB. Each variant names the element or rule involved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The XML is not well formed.
    #[error("malformed XML at line {line}, column {column}{}: {message}", if context.is_empty() { String::new() } else { format!(" inside {context}") })]
    Malformed {
        /// Line where the problem was detected (1-based).
        line: usize,
        /// Column (in characters, 1-based).
        column: usize,
        /// Path of enclosing elements.
        context: String,
        /// What is wrong.
        message: String,
    },
    /// The document is not UTF-8.
    #[error("not a UTF-8 document: {0}")]
    Encoding(String),
    /// A DOCTYPE or entity declaration was present.
    #[error("DOCTYPE and entity declarations are refused (they can read local files or expand without bound)")]
    Doctype,
    /// An entity reference other than the five predefined ones.
    #[error("entity reference &{name}; inside {context} is refused: only &lt; &gt; &amp; &apos; &quot; and character references are allowed")]
    Entity {
        /// Entity name.
        name: String,
        /// Path of enclosing elements.
        context: String,
    },
    /// The document exceeds the size bound.
    #[error("document is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Document size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// The document nests deeper than the bound.
    #[error("elements nest deeper than {limit} levels inside {context}")]
    TooDeep {
        /// Limit.
        limit: usize,
        /// Path of enclosing elements.
        context: String,
    },
    /// The document does not have the structure of a CIB or a scope.
    #[error("not a CIB: {0}")]
    NotCib(String),
    /// Two elements share one id.
    #[error("duplicate id `{id}`: <{first}> and <{second}>")]
    DuplicateId {
        /// The id.
        id: String,
        /// Name of the first element carrying it.
        first: String,
        /// Name of the second element carrying it.
        second: String,
    },
    /// A reference names an id that does not exist.
    #[error("<{element} id=\"{owner}\"> attribute {attr}: unknown id `{target}`")]
    UnknownRef {
        /// Element holding the reference.
        element: String,
        /// Id of that element (or of its nearest ancestor with an id).
        owner: String,
        /// Referencing attribute.
        attr: String,
        /// The id that does not exist.
        target: String,
    },
    /// A scope holds a fencing device.
    #[error("<primitive id=\"{0}\"> is a fencing (stonith) device: fencing devices are never replicated")]
    Fencing(String),
    /// A scope holds a section other than resources, constraints and tags.
    #[error("scope holds <{0}>: only <resources>, <constraints> and <tags> are replicated")]
    ForeignSection(String),
    /// The ticket has no `rsc_ticket` constraint in the CIB or scope.
    #[error("ticket `{0}` has no rsc_ticket constraint: nothing binds its resources to it")]
    NoTicketConstraint(String),
    /// A scope names a resource that no `rsc_ticket` of its ticket binds.
    #[error("resource `{resource}` is in the scope of ticket `{ticket}` but no rsc_ticket for `{ticket}` binds it (the copy could start without the ticket)")]
    Unbound {
        /// The ticket.
        ticket: String,
        /// The unbound top-level resource.
        resource: String,
    },
    /// A published scope's digest does not match its content.
    #[error("scope digest mismatch: document says {claimed}, content hashes to {actual}")]
    DigestMismatch {
        /// Digest carried by the document.
        claimed: String,
        /// Digest of the content.
        actual: String,
    },
    /// A published scope is for another ticket.
    #[error("scope is for ticket `{found}`, expected `{expected}`")]
    WrongTicket {
        /// Ticket asked for.
        expected: String,
        /// Ticket in the document.
        found: String,
    },
    /// A transform rule file or rule is invalid.
    #[error("transform rule {rule}: {message}")]
    Rule {
        /// Rule position and source ("rules.toml rule #2 (ip)").
        rule: String,
        /// What is wrong.
        message: String,
    },
    /// Local elements with ids of incoming elements exist and are not owned.
    #[error("conflict: {} local element(s) not owned by cib-replicator carry ids of replicated elements: {}; rename them, or pass --adopt to take over local top-level elements with the same id", ids.len(), ids.join(", "))]
    Conflict {
        /// The conflicting ids (top-level element id and kind).
        ids: Vec<String>,
    },
    /// The local site holds the ticket granted.
    #[error("ticket `{0}` is granted to this site: this site is the origin, refusing to overwrite its configuration")]
    TicketGrantedLocally(String),
    /// The ticket grant seen in the scope is older than one already applied.
    #[error("scope for ticket `{ticket}` comes from grant term {offered}, older than term {applied} already applied")]
    StaleTerm {
        /// The ticket.
        ticket: String,
        /// Term carried by the scope.
        offered: u64,
        /// Term recorded locally.
        applied: u64,
    },
    /// A grant term in the CIB is not a canonical unsigned decimal.
    #[error("ticket `{ticket}`: its ticket_state has {attr}=\"{value}\", not a grant term (an unsigned decimal without sign or leading zero)")]
    BadTerm {
        /// The ticket.
        ticket: String,
        /// The attribute read: `term` (booth) or `last-granted`.
        attr: String,
        /// Its value as written.
        value: String,
    },
    /// A published document breaks a rule every publisher follows.
    #[error("scope of ticket `{ticket}` refused: {reason}")]
    NotPublishable {
        /// The ticket.
        ticket: String,
        /// What the publisher would never have published.
        reason: String,
    },
    /// A document without a grant term, or with an older origin version in
    /// the same term, after a newer one was applied.
    #[error("scope of ticket `{ticket}` refused: {reason}")]
    Stale {
        /// The ticket.
        ticket: String,
        /// Why it is older than what is applied.
        reason: String,
    },
    /// The ownership record in the local CIB cannot be read.
    #[error("the ownership record of ticket `{ticket}` in crm_config is damaged: {reason}")]
    BadRecord {
        /// The ticket.
        ticket: String,
        /// What is wrong.
        reason: String,
    },
    /// A version number would overflow.
    #[error("the local CIB's {0} is at its largest value and cannot be increased")]
    VersionOverflow(String),
}
