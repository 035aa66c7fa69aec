//! What the edge knows about a visitor *before* assigning them, carried with each
//! exposure ([`crate::ingest::Exposure::context`]) so results can be sliced by it
//! (segments) and used as pre-exposure covariates (variance reduction). Nothing here can
//! be changed by the treatment: it is read from the request and from the visitor's
//! history cookie before any arm is chosen.
//!
//! Privacy: no IP address and no full user agent: a country code, a device class and a
//! browser family, a traffic source class, the entry page's path, and two small counts.
//!
//! ## Wire form (inside an exposure item)
//! ```json
//! "context": {"country": "ES", "device": "mobile", "browser": "safari",
//!             "source": "search", "landing": "/pricing",
//!             "prior_visits": 3, "prior_conversions": 1}
//! ```
//! `country` and `landing` are left out when unknown. An exposure without `context`
//! (an older edge, a plugin's unsigned call that could not tell) counts under the value
//! `unknown` of every dimension.

use alloc::string::String;

use serde::{Deserialize, Serialize};

/// Longest `landing` path kept, in bytes; longer paths are cut at a character boundary.
pub const MAX_LANDING_LEN: usize = 200;
/// Counts above this are stored as this (a visitor's 10 000th visit tells no more).
pub const MAX_PRIOR_COUNT: u32 = 1000;

/// The pre-assignment facts of one exposure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposureContext {
    /// ISO 3166-1 alpha-2, upper case (Cloudflare's `request.cf.country`); absent when
    /// unknown (Cloudflare's `XX`, Tor's `T1`, no `cf` object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub device: Device,
    pub browser: Browser,
    pub source: Source,
    /// The path (no query, no fragment) of the page where the visitor entered the
    /// experiment, at most [`MAX_LANDING_LEN`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing: Option<String>,
    /// Visits (sessions: 30 minutes without a request end one) before the current one,
    /// from the edge's history cookie; 0 for a first-time visitor. At most
    /// [`MAX_PRIOR_COUNT`].
    pub prior_visits: u32,
    /// Conversions the edge saw from this browser before the current visit. At most
    /// [`MAX_PRIOR_COUNT`].
    pub prior_conversions: u32,
}

impl ExposureContext {
    /// New (no prior visit) or returning.
    #[must_use]
    pub fn visitor_type(&self) -> VisitorType {
        if self.prior_visits == 0 {
            VisitorType::New
        } else {
            VisitorType::Returning
        }
    }

    /// The value of `dimension` for this exposure, as stored in segment statistics.
    #[must_use]
    pub fn value(&self, dimension: Dimension) -> &str {
        match dimension {
            Dimension::Country => self.country.as_deref().unwrap_or(UNKNOWN),
            Dimension::Device => self.device.as_str(),
            Dimension::Browser => self.browser.as_str(),
            Dimension::Source => self.source.as_str(),
            Dimension::VisitorType => self.visitor_type().as_str(),
        }
    }
}

/// The value every dimension takes for an exposure without context.
pub const UNKNOWN: &str = "unknown";

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value with this wire name.
            #[must_use]
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

wire_enum!(
    /// The device class, from the user agent.
    Device {
        Desktop => "desktop",
        Mobile => "mobile",
        Tablet => "tablet",
        /// Anything else (TVs, consoles, unknown agents).
        Other => "other",
    }
);

wire_enum!(
    /// The browser family, from the user agent.
    Browser {
        Chrome => "chrome",
        Safari => "safari",
        Firefox => "firefox",
        Edge => "edge",
        Samsung => "samsung",
        Opera => "opera",
        Other => "other",
    }
);

wire_enum!(
    /// Where the visit came from: the page's `utm_medium` and click ids first, then the
    /// referrer's host.
    Source {
        /// No referrer, no campaign parameters.
        Direct => "direct",
        Search => "search",
        Social => "social",
        Email => "email",
        /// Paid campaigns (`utm_medium` cpc/ppc/paid/display…, or a `gclid`/`fbclid`/`msclkid`).
        Paid => "paid",
        /// Another site's link.
        Referral => "referral",
        /// A page of the same site.
        Internal => "internal",
    }
);

wire_enum!(
    /// New or returning visitor.
    VisitorType {
        New => "new",
        Returning => "returning",
    }
);

wire_enum!(
    /// The dimensions results can be sliced by (segment statistics are kept per value of
    /// each). The entry page is stored with each exposure but is not a dimension: its
    /// values are unbounded.
    Dimension {
        Country => "country",
        Device => "device",
        Browser => "browser",
        Source => "source",
        VisitorType => "visitor_type",
    }
);
