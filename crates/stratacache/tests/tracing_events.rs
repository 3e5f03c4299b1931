//! The tracing events: stable names and fields.
//!
//! Alone in its own test binary, with its subscriber installed as the global default:
//! tracing caches each callsite's interest process-wide, so a test running beside others
//! that hit the same callsites without a subscriber could miss events.

use stratacache::telemetry::names;
use stratacache::{Cache, ErrorKind, Fallback};
use stratacache_tier::mock::{MockTier, TierOp};

/// A tracing subscriber that records each event's name and its `cache`/`tier` fields.
mod capture {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// An event's name and its fields, as text.
    pub(crate) type Captured = (String, Vec<(String, String)>);

    #[derive(Clone, Default)]
    pub(crate) struct Capture(pub(crate) Arc<Mutex<Vec<Captured>>>);

    struct Fields(Vec<(String, String)>);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0
                .push((field.name().to_string(), format!("{value:?}")));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().to_string(), value.to_string()));
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            metadata.target() == "stratacache"
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            self.0
                .lock()
                .unwrap()
                .push((event.metadata().name().to_string(), fields.0));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
        fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
            Some(tracing::level_filters::LevelFilter::DEBUG)
        }
    }
}

#[test]
fn tracing_events_have_stable_names_and_fields() {
    let capture = capture::Capture::default();
    let l2 = MockTier::<u32, String>::new();
    let cache: Cache<u32, String> = Cache::builder()
        .name("orders")
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap();
    tracing::subscriber::set_global_default(capture.clone()).unwrap();
    {
        futures::executor::block_on(async {
            cache.insert(1, "a".into()).await.unwrap();
            cache.get(&1).await.unwrap();
            l2.fail(TierOp::Get, ErrorKind::Unavailable);
            cache.get(&2).await.unwrap();
        });
    }
    let events = capture.0.lock().unwrap().clone();
    let names_seen: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names_seen,
        [
            names::TIER_INSERTED,
            names::TIER_INSERTED,
            names::OPERATION,
            names::TIER_HIT,
            names::OPERATION,
            names::TIER_MISS,
            names::TIER_ERROR,
            names::OPERATION,
        ]
    );
    let field = |index: usize, name: &str| {
        events[index]
            .1
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.clone())
    };
    assert_eq!(field(3, names::FIELD_CACHE).as_deref(), Some("orders"));
    assert_eq!(field(3, names::FIELD_TIER).as_deref(), Some("l1"));
    assert_eq!(field(4, names::FIELD_OPERATION).as_deref(), Some("get"));
    assert_eq!(field(4, names::FIELD_COALESCED).as_deref(), Some("false"));
    assert!(field(4, names::FIELD_DURATION_NS).is_some());
    assert_eq!(
        field(6, names::FIELD_ERROR_KIND).as_deref(),
        Some("unavailable")
    );
    assert_eq!(
        field(3, names::FIELD_REQUEST_ID),
        field(4, names::FIELD_REQUEST_ID)
    );
    assert_eq!(
        field(3, names::FIELD_ERROR_KIND),
        None,
        "error_kind is recorded on errors only"
    );
    // The message is the event's name: `fmt` output prints messages, not names.
    for (index, (name, _)) in events.iter().enumerate() {
        assert_eq!(field(index, "message").as_deref(), Some(name.as_str()));
    }
}
