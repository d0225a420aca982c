//! Who may do what to a session. Each question is one pure function of the
//! caller and the session as it is; the services ask these and nothing else
//! decides. The table test at the bottom states every role × state.
//!
//! Roles: a session's own customer; the agent it is offered to or held by
//! (its `agent_id`); any other agent; admins. Role-only questions ("only
//! admins may list agents") stay on [`Viewer`]'s `require_*`.

use super::{ChatSession, Party, Refusal, SessionStatus};
use crate::auth::{Role, Viewer};

fn is_own_customer(viewer: &Viewer, s: &ChatSession) -> bool {
    viewer.role == Role::Customer && s.customer_id == viewer.id
}

fn is_its_agent(viewer: &Viewer, s: &ChatSession) -> bool {
    viewer.role == Role::Agent && s.agent_id.as_deref() == Some(viewer.id.as_str())
}

/// May read the session: its customer, an admin, the agent it is offered
/// to or held by, or any agent while it is in the queue (to pick it).
/// Callers answer "not found" otherwise, so that ids cannot be probed.
pub fn may_view(viewer: &Viewer, s: &ChatSession) -> bool {
    match viewer.role {
        Role::Admin => true,
        Role::Customer => is_own_customer(viewer, s),
        Role::Agent => s.status.is_queued() || is_its_agent(viewer, s),
    }
}

/// May follow the session's live feed: its customer, the agent it is
/// offered to or held by, and admins. Unlike viewing, a queued session's
/// feed is not open to every agent.
pub fn may_follow(viewer: &Viewer, s: &ChatSession) -> bool {
    viewer.role == Role::Admin || is_own_customer(viewer, s) || is_its_agent(viewer, s)
}

/// The side the caller writes for: the customer while the session is open,
/// the agent once they accepted it. Admins watch; they do not write.
pub fn writer(viewer: &Viewer, s: &ChatSession) -> Result<Party, Refusal> {
    let party = if is_own_customer(viewer, s) {
        Party::Customer
    } else if is_its_agent(viewer, s) {
        Party::Agent
    } else if viewer.role == Role::Admin {
        return Err(Refusal::Forbidden("admins cannot write in sessions".into()));
    } else {
        return Err(Refusal::Forbidden("not your session".into()));
    };
    match (party, s.status) {
        (_, SessionStatus::Ended) => Err(Refusal::Conflict("session has ended".into())),
        (Party::Agent, SessionStatus::Waiting | SessionStatus::Offered) => Err(Refusal::Conflict(
            "accept the session before writing in it".into(),
        )),
        (party, _) => Ok(party),
    }
}

/// The side whose receipts (delivered, read) the caller moves: the
/// customer, or the agent once they accepted. An agent only offered the
/// session has not joined it, and may pass it on.
pub fn reader(viewer: &Viewer, s: &ChatSession) -> Result<Party, Refusal> {
    s.reader_of(viewer.role, &viewer.id).ok_or_else(|| {
        Refusal::Forbidden(
            "only the customer and the agent who accepted a session have receipts".into(),
        )
    })
}

/// May end the session: its customer, the agent holding it (one only
/// offered it declines instead), or an admin. Ending an ended session is
/// allowed (it answers as it is), so a retried request does not fail.
pub fn may_end(viewer: &Viewer, s: &ChatSession) -> Result<(), Refusal> {
    let allowed = match viewer.role {
        Role::Admin => true,
        Role::Customer => is_own_customer(viewer, s),
        Role::Agent => is_its_agent(viewer, s) && s.status != SessionStatus::Offered,
    };
    match (allowed, may_view(viewer, s)) {
        (true, _) => Ok(()),
        (false, true) => Err(Refusal::Forbidden(
            "only the session's customer, its agent or an admin may end it".into(),
        )),
        (false, false) => Err(Refusal::Forbidden("not your session".into())),
    }
}

/// May hand the session on: the agent it is with, or an admin. Whether it
/// can move now is the session's transition to decide.
pub fn may_transfer(viewer: &Viewer, s: &ChatSession) -> Result<(), Refusal> {
    if viewer.role == Role::Admin || is_its_agent(viewer, s) {
        Ok(())
    } else {
        Err(Refusal::Forbidden(
            "only the session's agent or an admin may transfer it".into(),
        ))
    }
}

/// May move the session within the queue by priority: the agent it is
/// offered to, or an admin. (While it is queued: the session's rule.)
pub fn may_set_priority(viewer: &Viewer, s: &ChatSession) -> Result<(), Refusal> {
    if viewer.role == Role::Admin || is_its_agent(viewer, s) {
        Ok(())
    } else {
        Err(Refusal::Forbidden(
            "only the agent holding the session or an admin may change its priority".into(),
        ))
    }
}

/// May rate the session: its own customer, once it ended after an agent
/// served it. (How often, and until when, is the rating's own rule.)
pub fn may_rate(viewer: &Viewer, s: &ChatSession) -> Result<(), Refusal> {
    if !is_own_customer(viewer, s) {
        return Err(Refusal::Forbidden(
            "only the session's customer may rate it".into(),
        ));
    }
    match (s.status, s.assigned_at) {
        (SessionStatus::Ended, Some(_)) => Ok(()),
        (SessionStatus::Ended, None) => Err(Refusal::Conflict(
            "no agent served this chat; there is nothing to rate".into(),
        )),
        _ => Err(Refusal::Conflict("rate the chat once it has ended".into())),
    }
}

/// May write an internal note: the agent the session is offered to or held
/// by, an agent who held it before (`held_before`, from its history), or an
/// admin. Never a customer.
pub fn may_note(viewer: &Viewer, s: &ChatSession, held_before: bool) -> Result<(), Refusal> {
    if is_staff_of(viewer, s, held_before) {
        Ok(())
    } else {
        Err(Refusal::Forbidden(
            "only the session's agents and admins may write notes".into(),
        ))
    }
}

/// May register, change and inspect webhook endpoints and their
/// deliveries: admins only (an endpoint receives every chat's content).
pub fn may_manage_webhooks(viewer: &Viewer) -> Result<(), Refusal> {
    match viewer.role {
        Role::Admin => Ok(()),
        Role::Agent | Role::Customer => {
            Err(Refusal::Forbidden("only admins may manage webhooks".into()))
        }
    }
}

/// The session's staff: the agent it is offered to or held by, an agent
/// who held it before (`held_before`), and admins.
fn is_staff_of(viewer: &Viewer, s: &ChatSession, held_before: bool) -> bool {
    match viewer.role {
        Role::Admin => true,
        Role::Agent => is_its_agent(viewer, s) || held_before,
        Role::Customer => false,
    }
}

/// May hand the session to the ticket system: the agent who holds it or
/// held it before (`held_before`), or an admin. An agent it is only
/// offered to has not taken it on.
pub fn may_ticket(viewer: &Viewer, s: &ChatSession, held_before: bool) -> Result<(), Refusal> {
    let only_offered = s.status == SessionStatus::Offered && !held_before;
    if is_staff_of(viewer, s, held_before) && !(viewer.role == Role::Agent && only_offered) {
        Ok(())
    } else {
        Err(Refusal::Forbidden(
            "only an agent who holds or held the session, or an admin, may turn it into a ticket"
                .into(),
        ))
    }
}

/// May work on the session with the agent's tools (render a canned
/// response for it, see the customer's context): the agent it is offered
/// to or held by while it is open, or an admin.
pub fn may_assist(viewer: &Viewer, s: &ChatSession) -> Result<(), Refusal> {
    let open_with_agent = matches!(s.status, SessionStatus::Offered | SessionStatus::Active);
    if viewer.role == Role::Admin || (is_its_agent(viewer, s) && open_with_agent) {
        Ok(())
    } else {
        Err(Refusal::Forbidden(
            "only the agent holding the session or an admin may do this".into(),
        ))
    }
}

/// May read the session's rating: its customer, the agent the rating names
/// (who held the session when it ended) and admins. Agents who held it
/// earlier, and the agent of a later transfer, do not.
pub fn may_see_rating(viewer: &Viewer, s: &ChatSession, rated_agent: Option<&str>) -> bool {
    match viewer.role {
        Role::Admin => true,
        Role::Customer => is_own_customer(viewer, s),
        Role::Agent => rated_agent == Some(viewer.id.as_str()),
    }
}

/// Whose rating figures the caller may read, as the agent to filter by
/// (None: every agent's). Admins: anyone's or everyone's. Agents: their
/// own, whether or not they name themselves; naming another agent is
/// refused rather than quietly answered with their own figures.
pub fn rating_stats_scope<'a>(
    viewer: &'a Viewer,
    agent_id: Option<&'a str>,
) -> Result<Option<&'a str>, Refusal> {
    match (viewer.role, agent_id) {
        (Role::Admin, scope) => Ok(scope),
        (Role::Agent, None) => Ok(Some(viewer.id.as_str())),
        (Role::Agent, Some(a)) if a == viewer.id => Ok(Some(a)),
        (Role::Agent, Some(_)) => Err(Refusal::Forbidden(
            "agents see their own rating figures only".into(),
        )),
        (Role::Customer, _) => Err(Refusal::Forbidden(
            "only agents and admins may read rating figures".into(),
        )),
    }
}

/// May get a download link for the session's files: its customer, the
/// agent it is offered to or held by (or last held by, once ended), and
/// admins. Other agents may see a queued session's messages, to pick it,
/// but not its files.
pub fn may_download(viewer: &Viewer, s: &ChatSession) -> bool {
    may_follow(viewer, s)
}

/// May share an article in the session: its agent, once they accepted it
/// and while it is ACTIVE.
pub fn may_share_article(viewer: &Viewer, s: &ChatSession) -> Result<(), Refusal> {
    if viewer.role != Role::Agent {
        return Err(Refusal::Forbidden(
            "only the session's agent shares articles".into(),
        ));
    }
    match writer(viewer, s)? {
        Party::Agent => Ok(()),
        Party::Customer => Err(Refusal::Forbidden(
            "only the session's agent shares articles".into(),
        )),
    }
}

/// May read a session's internal notes (live too): staff who can see the
/// session. Customers never; to them a session has no notes.
pub fn may_read_notes(viewer: &Viewer) -> bool {
    viewer.role != Role::Customer
}

/// Which sessions a search may return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchScope {
    /// Every session still kept (admins).
    All,
    /// Sessions offered to or held by this agent now, or that they held
    /// before (accepted, were assigned or transferred).
    Agent(String),
}

/// Whose sessions the caller may search: admins all, agents their own,
/// customers none (they list theirs with mySessions).
pub fn search_scope(viewer: &Viewer) -> Result<SearchScope, Refusal> {
    match viewer.role {
        Role::Admin => Ok(SearchScope::All),
        Role::Agent => Ok(SearchScope::Agent(viewer.id.clone())),
        Role::Customer => Err(Refusal::Forbidden(
            "only agents and admins search sessions".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUSTOMER: &str = "cust-1";
    const AGENT: &str = "agent-a";

    fn viewer(role: Role, id: &str) -> Viewer {
        Viewer {
            id: id.into(),
            role,
            name: None,
            expires_at: i64::MAX,
            priority: None,
        }
    }

    /// A session of CUSTOMER in `status`; offered to, held or last held by
    /// AGENT when `served`.
    fn session(status: SessionStatus, served: bool) -> ChatSession {
        let mut s = ChatSession::sample(status, served.then_some(AGENT));
        s.customer_id = CUSTOMER.into();
        if served && status != SessionStatus::Offered {
            s.assigned_at = Some(s.created_at);
        }
        s
    }

    /// What one question answers: allowed (with the side, where it has
    /// one), FORBIDDEN, or CONFLICT (allowed someday, not in this state).
    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    enum A {
        Yes,
        No,
        C,
        Cu,
        Ag,
    }

    /// The side an allowed answer names, if it names one.
    trait Side {
        fn side(self) -> Option<Party>;
    }
    impl Side for () {
        fn side(self) -> Option<Party> {
            None
        }
    }
    impl Side for Party {
        fn side(self) -> Option<Party> {
            Some(self)
        }
    }

    fn answer<T: Side>(r: Result<T, Refusal>) -> A {
        match r {
            Ok(p) => match p.side() {
                Some(Party::Customer) => A::Cu,
                Some(Party::Agent) => A::Ag,
                None => A::Yes,
            },
            Err(Refusal::Forbidden(_)) => A::No,
            Err(Refusal::Conflict(_)) => A::C,
        }
    }

    fn yes_no(b: bool) -> A {
        if b {
            A::Yes
        } else {
            A::No
        }
    }

    #[test]
    fn every_role_in_every_state() {
        use SessionStatus::*;
        use A::*;
        let own = viewer(Role::Customer, CUSTOMER);
        let stranger = viewer(Role::Customer, "cust-2");
        let its_agent = viewer(Role::Agent, AGENT);
        let other_agent = viewer(Role::Agent, "agent-b");
        let admin = viewer(Role::Admin, "boss");
        // (who, status, served): view, follow, write, read, end, transfer, rate, note, priority, assist
        #[rustfmt::skip]
        let table: [(&Viewer, SessionStatus, bool, [A; 10]); 25] = [
            (&own,         Waiting, false, [Yes, Yes, Cu, Cu, Yes, No, C, No, No, No]),
            (&own,         Offered, true,  [Yes, Yes, Cu, Cu, Yes, No, C, No, No, No]),
            (&own,         Active,  true,  [Yes, Yes, Cu, Cu, Yes, No, C, No, No, No]),
            (&own,         Ended,   true,  [Yes, Yes, C, Cu, Yes, No, Yes, No, No, No]),
            (&own,         Ended,   false, [Yes, Yes, C, Cu, Yes, No, C, No, No, No]),
            (&stranger,    Waiting, false, [No, No, No, No, No, No, No, No, No, No]),
            (&stranger,    Offered, true,  [No, No, No, No, No, No, No, No, No, No]),
            (&stranger,    Active,  true,  [No, No, No, No, No, No, No, No, No, No]),
            (&stranger,    Ended,   true,  [No, No, No, No, No, No, No, No, No, No]),
            (&stranger,    Ended,   false, [No, No, No, No, No, No, No, No, No, No]),
            (&its_agent,   Waiting, false, [Yes, No, No, No, No, No, No, No, No, No]),
            (&its_agent,   Offered, true,  [Yes, Yes, C, No, No, Yes, No, Yes, Yes, Yes]),
            (&its_agent,   Active,  true,  [Yes, Yes, Ag, Ag, Yes, Yes, No, Yes, Yes, Yes]),
            (&its_agent,   Ended,   true,  [Yes, Yes, C, Ag, Yes, Yes, No, Yes, Yes, No]),
            (&its_agent,   Ended,   false, [No, No, No, No, No, No, No, No, No, No]),
            (&other_agent, Waiting, false, [Yes, No, No, No, No, No, No, No, No, No]),
            (&other_agent, Offered, true,  [Yes, No, No, No, No, No, No, No, No, No]),
            (&other_agent, Active,  true,  [No, No, No, No, No, No, No, No, No, No]),
            (&other_agent, Ended,   true,  [No, No, No, No, No, No, No, No, No, No]),
            (&other_agent, Ended,   false, [No, No, No, No, No, No, No, No, No, No]),
            (&admin,       Waiting, false, [Yes, Yes, No, No, Yes, Yes, No, Yes, Yes, Yes]),
            (&admin,       Offered, true,  [Yes, Yes, No, No, Yes, Yes, No, Yes, Yes, Yes]),
            (&admin,       Active,  true,  [Yes, Yes, No, No, Yes, Yes, No, Yes, Yes, Yes]),
            (&admin,       Ended,   true,  [Yes, Yes, No, No, Yes, Yes, No, Yes, Yes, Yes]),
            (&admin,       Ended,   false, [Yes, Yes, No, No, Yes, Yes, No, Yes, Yes, Yes]),
        ];
        for (who, status, served, expected) in table {
            let s = session(status, served);
            let got = [
                yes_no(may_view(who, &s)),
                yes_no(may_follow(who, &s)),
                answer(writer(who, &s)),
                answer(reader(who, &s)),
                answer(may_end(who, &s)),
                answer(may_transfer(who, &s)),
                answer(may_rate(who, &s)),
                answer(may_note(who, &s, false)),
                answer(may_set_priority(who, &s)),
                answer(may_assist(who, &s)),
            ];
            assert_eq!(
                got, expected,
                "{:?} {} in a {status:?} session (served: {served})",
                who.role, who.id
            );
        }
    }

    #[test]
    fn files_and_articles_for_every_role_in_every_state() {
        use SessionStatus::*;
        use A::*;
        let own = viewer(Role::Customer, CUSTOMER);
        let stranger = viewer(Role::Customer, "cust-2");
        let its_agent = viewer(Role::Agent, AGENT);
        let other_agent = viewer(Role::Agent, "agent-b");
        let admin = viewer(Role::Admin, "boss");
        // (who, status, served): download, share an article
        #[rustfmt::skip]
        let table: [(&Viewer, SessionStatus, bool, [A; 2]); 20] = [
            (&own,         Waiting, false, [Yes, No]),
            (&own,         Active,  true,  [Yes, No]),
            (&own,         Ended,   true,  [Yes, No]),
            (&own,         Ended,   false, [Yes, No]),
            (&stranger,    Waiting, false, [No, No]),
            (&stranger,    Active,  true,  [No, No]),
            (&stranger,    Ended,   true,  [No, No]),
            (&its_agent,   Waiting, false, [No, No]),
            (&its_agent,   Offered, true,  [Yes, C]),
            (&its_agent,   Active,  true,  [Yes, Yes]),
            (&its_agent,   Ended,   true,  [Yes, C]),
            (&other_agent, Waiting, false, [No, No]),
            (&other_agent, Offered, true,  [No, No]),
            (&other_agent, Active,  true,  [No, No]),
            (&other_agent, Ended,   true,  [No, No]),
            (&admin,       Waiting, false, [Yes, No]),
            (&admin,       Offered, true,  [Yes, No]),
            (&admin,       Active,  true,  [Yes, No]),
            (&admin,       Ended,   true,  [Yes, No]),
            (&admin,       Ended,   false, [Yes, No]),
        ];
        for (who, status, served, expected) in table {
            let s = session(status, served);
            let got = [
                yes_no(may_download(who, &s)),
                answer(may_share_article(who, &s)),
            ];
            assert_eq!(
                got, expected,
                "{:?} {} in a {status:?} session (served: {served})",
                who.role, who.id
            );
        }
    }

    #[test]
    fn an_agent_who_held_a_session_before_may_still_note_it() {
        let earlier_agent = viewer(Role::Agent, "agent-b");
        let s = session(SessionStatus::Active, true);
        assert!(may_note(&earlier_agent, &s, false).is_err());
        assert!(may_note(&earlier_agent, &s, true).is_ok());
        let customer = viewer(Role::Customer, CUSTOMER);
        assert!(may_note(&customer, &s, true).is_err());
    }

    #[test]
    fn tickets_and_ratings_by_role() {
        use SessionStatus::*;
        let own = viewer(Role::Customer, CUSTOMER);
        let stranger = viewer(Role::Customer, "cust-2");
        let its_agent = viewer(Role::Agent, AGENT);
        let other_agent = viewer(Role::Agent, "agent-b");
        let admin = viewer(Role::Admin, "boss");
        // (who, status, held before): may_ticket; sees a rating naming AGENT, naming no one
        #[rustfmt::skip]
        let table: [(&Viewer, SessionStatus, bool, bool, bool, bool); 13] = [
            (&own,         Ended,  false, false, true,  true),
            (&own,         Active, false, false, true,  true),
            (&stranger,    Ended,  false, false, false, false),
            (&its_agent,   Active, false, true,  true,  false),
            (&its_agent,   Ended,  false, true,  true,  false),
            (&its_agent,   Offered, false, false, true, false),
            (&its_agent,   Offered, true,  true,  true,  false),
            (&other_agent, Ended,  false, false, false, false),
            (&other_agent, Ended,  true,  true,  false, false),
            (&other_agent, Active, true,  true,  false, false),
            (&admin,       Ended,  false, true,  true,  true),
            (&admin,       Active, false, true,  true,  true),
            (&admin,       Waiting, false, true, true,  true),
        ];
        for (who, status, held_before, ticket, sees_named, sees_unnamed) in table {
            let s = session(status, status != Waiting);
            let what = format!("{:?} {} in a {status:?} session", who.role, who.id);
            assert_eq!(
                may_ticket(who, &s, held_before).is_ok(),
                ticket,
                "ticket: {what}"
            );
            assert_eq!(
                may_see_rating(who, &s, Some(AGENT)),
                sees_named,
                "rating: {what}"
            );
            assert_eq!(
                may_see_rating(who, &s, None),
                sees_unnamed,
                "rating: {what}"
            );
        }
    }

    #[test]
    fn rating_figures_are_an_agents_own() {
        let admin = viewer(Role::Admin, "boss");
        let ann = viewer(Role::Agent, "ann");
        let customer = viewer(Role::Customer, CUSTOMER);
        assert_eq!(rating_stats_scope(&admin, None), Ok(None));
        assert_eq!(rating_stats_scope(&admin, Some("bob")), Ok(Some("bob")));
        assert_eq!(rating_stats_scope(&ann, None), Ok(Some("ann")));
        assert_eq!(rating_stats_scope(&ann, Some("ann")), Ok(Some("ann")));
        assert!(matches!(
            rating_stats_scope(&ann, Some("bob")),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            rating_stats_scope(&customer, None),
            Err(Refusal::Forbidden(_))
        ));
    }

    #[test]
    fn notes_and_search_are_for_staff_only() {
        assert!(!may_read_notes(&viewer(Role::Customer, CUSTOMER)));
        assert!(may_read_notes(&viewer(Role::Agent, AGENT)));
        assert!(may_read_notes(&viewer(Role::Admin, "boss")));
        assert!(search_scope(&viewer(Role::Customer, CUSTOMER)).is_err());
        assert_eq!(
            search_scope(&viewer(Role::Agent, AGENT)),
            Ok(SearchScope::Agent(AGENT.into()))
        );
        assert_eq!(
            search_scope(&viewer(Role::Admin, "boss")),
            Ok(SearchScope::All)
        );
    }

    #[test]
    fn ending_tells_a_stranger_only_that_it_is_not_theirs() {
        let other_agent = viewer(Role::Agent, "agent-b");
        let queued = session(SessionStatus::Waiting, false);
        let held = session(SessionStatus::Active, true);
        let msg = |r: Result<(), Refusal>| r.unwrap_err().to_string();
        assert!(msg(may_end(&other_agent, &queued)).contains("only the session's customer"));
        assert_eq!(msg(may_end(&other_agent, &held)), "not your session");
    }

    #[test]
    fn only_admins_manage_webhooks() {
        for (role, allowed) in [
            (Role::Admin, true),
            (Role::Agent, false),
            (Role::Customer, false),
        ] {
            assert_eq!(
                may_manage_webhooks(&viewer(role, "x")).is_ok(),
                allowed,
                "{role:?}"
            );
        }
    }
}
