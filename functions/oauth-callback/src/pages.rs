//! The small HTML pages athletes see during linking: one per outcome, each saying what to do next.

/// A page: status, title, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// Heading (also the `<title>`).
    pub title: &'static str,
    /// What happened and what to do, one or two sentences.
    pub message: &'static str,
}

impl Page {
    /// The HTML document. Every text is a constant, so nothing from the request reaches the page.
    pub fn html(&self) -> String {
        format!(
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; background: #f4f5f7; margin: 0; }}
  main {{ max-width: 32rem; margin: 12vh auto; background: #fff; padding: 2rem 2.25rem; border-radius: 12px;
         box-shadow: 0 1px 4px rgba(0,0,0,.08); }}
  h1 {{ font-size: 1.35rem; margin: 0 0 .75rem; color: {colour}; }}
  p {{ line-height: 1.5; color: #333; margin: 0; }}
  footer {{ margin-top: 1.5rem; font-size: .8rem; color: #777; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p>{message}</p>
<footer>Polar → Smartabase connector</footer>
</main>
</body>
</html>
"#,
            title = self.title,
            message = self.message,
            colour = if self.status < 400 {
                "#1b7f3b"
            } else {
                "#b3261e"
            },
        )
    }
}

/// The athlete's Polar account is linked.
pub const LINKED: Page = Page {
    status: 200,
    title: "Your Polar account is linked",
    message: "Your training sessions, daily activity, sleep and Nightly Recharge will appear in Smartabase \
              shortly, and keep arriving from now on. You can close this page.",
};

/// The token is held but Polar did not finish its side in time: the scan finishes the link.
pub const LINK_PENDING: Page = Page {
    status: 200,
    title: "Your Polar account is connected",
    message: "Polar is slow to confirm the connection right now, so the connector finishes it by itself within \
              two hours; your training sessions, daily activity, sleep and Nightly Recharge then start arriving in \
              Smartabase. You don't need to do anything, and you can close this page.",
};

/// The callback came from a browser that did not start the authorisation (a forwarded consent link, or
/// cookies blocked): nothing was linked or spent.
pub const OTHER_BROWSER: Page = Page {
    status: 403,
    title: "Please open your authorisation link again",
    message: "This authorisation was started in another browser (or this browser blocked its cookie), so \
              nothing was linked. Open the authorisation link in your own Polar Auth Portal profile in Smartabase, \
              in this browser, and finish it here.",
};

/// The link lacks its parameters or they are malformed.
pub const LINK_MALFORMED: Page = Page {
    status: 400,
    title: "This link is incomplete",
    message: "The authorisation link seems to have been cut short. Open it again from your Polar Auth Portal \
              profile in Smartabase, or ask your coach for a new one.",
};

/// The signature does not match: tampered, or someone else's link edited.
pub const LINK_BAD_SIGNATURE: Page = Page {
    status: 403,
    title: "This link is not valid",
    message: "Only your own personal link works. Open the authorisation link in your own Polar Auth Portal \
              profile in Smartabase, or ask your coach for a new one.",
};

/// The link's expiry passed.
pub const LINK_EXPIRED: Page = Page {
    status: 403,
    title: "This link has expired",
    message: "Authorisation links are renewed automatically. Open the link in your Polar Auth Portal profile \
              in Smartabase again (it may take up to two hours to be renewed), or ask your coach for a new one.",
};

/// The state was used before, or is older than 15 minutes (also every replayed callback).
pub const STATE_USED: Page = Page {
    status: 400,
    title: "This authorisation has already been used or has expired",
    message: "Each authorisation can be completed once, within 15 minutes. If your account is not linked yet, \
              open your authorisation link in Smartabase again.",
};

/// The athlete declined at Polar.
pub const ACCESS_DENIED: Page = Page {
    status: 403,
    title: "Access was not granted",
    message: "You declined access at Polar, so nothing was linked. If that was a mistake, open your \
              authorisation link in Smartabase again and choose to accept.",
};

/// Polar's mandatory consents are missing.
pub const CONSENTS_MISSING: Page = Page {
    status: 403,
    title: "Please accept Polar's consents first",
    message: "Polar needs you to accept its mandatory data-sharing consents. Sign in at account.polar.com, \
              accept them, then open your authorisation link in Smartabase again.",
};

/// The Polar account signed in to is linked to another athlete: refused, nothing changed.
pub const ACCOUNT_OF_ANOTHER_ATHLETE: Page = Page {
    status: 409,
    title: "This Polar account belongs to another athlete",
    message: "The Polar account you signed in with is already linked to another athlete in Smartabase, so \
              nothing was linked. If you share a device or browser, sign out of Polar Flow, open your own \
              authorisation link in Smartabase again and sign in with your own Polar account. If this is your \
              account, ask your coach to unlink it from the other athlete first.",
};

/// Polar refused the code (expired or used).
pub const CODE_REFUSED: Page = Page {
    status: 400,
    title: "Authorisation could not be completed",
    message: "Polar did not accept this authorisation, usually because it took too long. Nothing was changed. \
              Open your authorisation link in Smartabase again.",
};

/// Polar reported an error other than a denial.
pub const POLAR_ERROR: Page = Page {
    status: 502,
    title: "Polar could not complete the authorisation",
    message: "Polar reported a problem. Nothing was changed. Please open your authorisation link again in a few minutes.",
};

/// Polar or our storage is unavailable: nothing was stored, try again.
pub const TRY_AGAIN: Page = Page {
    status: 503,
    title: "Please try again in a few minutes",
    message: "Polar or the connector is not answering right now. Nothing was changed. Open your \
              authorisation link in Smartabase again in a few minutes.",
};

/// Our side is misconfigured (operators are alerted by the error log).
pub const OUR_FAULT: Page = Page {
    status: 500,
    title: "Something went wrong on our side",
    message: "The connector could not complete the link. Your administrator has been alerted; please try \
              again later.",
};

/// Unknown path.
pub const NOT_FOUND: Page = Page {
    status: 404,
    title: "Page not found",
    message: "There is nothing here. Use the authorisation link in your Polar Auth Portal profile in Smartabase.",
};
