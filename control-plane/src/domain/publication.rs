//! Snapshot publications: the outcome of one push of a site's snapshot to the edge
//! (`snapshot_publications.status`).

crate::domain::named_set! {
    /// What became of one push of a site's snapshot.
    pub enum PublicationStatus("publication status") {
        /// The edge accepted it.
        Published = "published",
        /// The edge refused it or could not be reached (see the row's `error`).
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::PublicationStatus;
    use crate::domain::verification::{DomainStatus, Method};

    /// The API shows the same names the column stores.
    #[test]
    fn serde_names_are_the_stored_names() {
        fn check<T: serde::Serialize + Copy>(all: &[T], name: impl Fn(T) -> &'static str) {
            for &v in all {
                assert_eq!(serde_json::to_value(v).unwrap(), name(v));
            }
        }
        check(PublicationStatus::ALL, PublicationStatus::as_str);
        check(DomainStatus::ALL, DomainStatus::as_str);
        check(Method::ALL, Method::as_str);
        assert_eq!(
            PublicationStatus::parse("published"),
            Some(PublicationStatus::Published)
        );
        assert_eq!(DomainStatus::parse("Verified"), None);
        assert_eq!(Method::parse("http_file"), Some(Method::HttpFile));
    }
}
