use stratacache_tier::{BoxError, Error, ErrorKind};

/// Maps the error of a tower stack into a tier [`Error`]: a stratacache error keeps its
/// kind, tower's timeout becomes [`ErrorKind::Timeout`], load shedding
/// [`ErrorKind::Unavailable`], and anything else [`ErrorKind::Other`] with the original
/// as its source.
pub(crate) fn to_tier_error(error: BoxError) -> Error {
    if let Some(error) = error.downcast_ref::<Error>() {
        return error.clone();
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        return Error::from_source(ErrorKind::Timeout, error);
    }
    if error.is::<tower::load_shed::error::Overloaded>() {
        return Error::from_source(ErrorKind::Unavailable, error);
    }
    Error::from_source(ErrorKind::Other, error)
}

/// The kind a retry policy judges an error by.
pub(crate) fn kind_of(error: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    if let Some(error) = error.downcast_ref::<Error>() {
        return Some(error.kind());
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        return Some(ErrorKind::Timeout);
    }
    if error.is::<tower::load_shed::error::Overloaded>() {
        return Some(ErrorKind::Unavailable);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_survive_the_trip_through_a_box() {
        let timeout: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(to_tier_error(timeout).kind(), ErrorKind::Timeout);
        let codec: BoxError = Box::new(Error::new(ErrorKind::Codec, "bad"));
        assert_eq!(to_tier_error(codec).kind(), ErrorKind::Codec);
        let other: BoxError = "boom".into();
        assert_eq!(to_tier_error(other).kind(), ErrorKind::Other);
    }
}
