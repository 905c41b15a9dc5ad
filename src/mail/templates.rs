//! What each message says, in the store's four languages: plain text, amounts written with
//! their currency as each language writes them (`money::written`), one function per kind.
//! Each template states its four languages beside each other, so they are read together.

use rust_decimal::Decimal;
use uuid::Uuid;

use crate::money::{self, Currency};

/// A language the mail is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    En,
    De,
    Fr,
    Ja,
}

impl Language {
    pub const ALL: [Language; 4] = [Language::En, Language::De, Language::Fr, Language::Ja];

    /// As stored with the message (`mail_outbox.locale`).
    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::De => "de",
            Self::Fr => "fr",
            Self::Ja => "ja",
        }
    }

    /// The language of a locale tag such as `de-AT` (its primary subtag), if the mail speaks it.
    pub fn of(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        Self::ALL.into_iter().find(|lang| lang.tag() == primary)
    }

    /// The shopper's language where the mail speaks it, else the store default's, else English.
    pub fn choose(locale: Option<&str>, store_default: &str) -> Self {
        locale
            .and_then(Self::of)
            .or_else(|| Self::of(store_default))
            .unwrap_or(Self::En)
    }

    fn money(self, amount: Decimal, currency: Currency) -> String {
        money::written(currency.round(amount), currency.code(), self.tag())
    }

    fn greeting(self, name: Option<&str>) -> String {
        match (self, name) {
            (Self::En, Some(name)) => format!("Hello {name},"),
            (Self::En, None) => "Hello,".into(),
            (Self::De, Some(name)) => format!("Hallo {name},"),
            (Self::De, None) => "Hallo,".into(),
            (Self::Fr, Some(name)) => format!("Bonjour {name},"),
            (Self::Fr, None) => "Bonjour,".into(),
            (Self::Ja, Some(name)) => format!("{name} 様"),
            (Self::Ja, None) => "お客様".into(),
        }
    }

    fn sign_off(self) -> &'static str {
        match self {
            Self::En => "Thank you for shopping with Agora.",
            Self::De => "Vielen Dank für Ihren Einkauf bei Agora.",
            Self::Fr => "Merci d’avoir choisi Agora.",
            Self::Ja => "Agora をご利用いただきありがとうございます。",
        }
    }

    /// `Follow your order at <link>`, or nothing without a base URL.
    fn order_link(self, link: &str) -> Option<String> {
        if link.is_empty() {
            return None;
        }
        Some(match self {
            Self::En => format!("Follow your order at {link}"),
            Self::De => format!("Den Stand Ihrer Bestellung sehen Sie unter {link}"),
            Self::Fr => format!("Suivez votre commande sur {link}"),
            Self::Ja => format!("ご注文の状況は {link} でご確認いただけます。"),
        })
    }
}

/// An order as its mail names it.
#[derive(Debug, Clone)]
pub struct OrderRef {
    pub id: Uuid,
    pub name: Option<String>,
    pub currency: Currency,
    /// `{public url}/orders/{id}`, or empty without a public URL.
    pub link: String,
}

/// A line of a confirmation.
#[derive(Debug, Clone)]
pub struct ConfirmedLine {
    pub title: String,
    pub sku: String,
    pub quantity: i32,
    pub total: Decimal,
}

/// What a confirmation lists.
#[derive(Debug, Clone)]
pub struct Confirmation {
    pub order: OrderRef,
    pub lines: Vec<ConfirmedLine>,
    pub shipping: Option<Decimal>,
    pub tax: Decimal,
    pub tax_included: bool,
    pub total: Decimal,
}

/// Puts a message together: greeting, paragraphs, sign-off, separated by blank lines.
fn letter(language: Language, name: Option<&str>, paragraphs: &[String]) -> String {
    let mut body = language.greeting(name);
    for paragraph in paragraphs.iter().filter(|p| !p.is_empty()) {
        body.push_str("\n\n");
        body.push_str(paragraph);
    }
    body.push_str("\n\n");
    body.push_str(language.sign_off());
    body.push('\n');
    body
}

/// The order was paid: what it holds and what it cost.
pub fn order_confirmed(language: Language, confirmation: &Confirmation) -> (String, String) {
    let order = &confirmation.order;
    let (id, money) = (order.id, |amount| language.money(amount, order.currency));
    let subject = match language {
        Language::En => "Your Agora order is confirmed",
        Language::De => "Ihre Agora-Bestellung ist bestätigt",
        Language::Fr => "Votre commande Agora est confirmée",
        Language::Ja => "ご注文を承りました（Agora）",
    };
    let intro = match language {
        Language::En => format!("We received your payment for order {id}:"),
        Language::De => format!("wir haben Ihre Zahlung für die Bestellung {id} erhalten:"),
        Language::Fr => {
            format!("nous avons bien reçu votre paiement pour la commande {id} :")
        }
        Language::Ja => format!("ご注文 {id} のお支払いを確認しました。"),
    };
    let mut summary: Vec<String> = confirmation
        .lines
        .iter()
        .map(|line| {
            format!(
                "  {} × {} ({})  {}",
                line.quantity,
                line.title,
                line.sku,
                money(line.total)
            )
        })
        .collect();
    let (shipping, tax, total) = match language {
        Language::En => ("Shipping", ["Tax", "Tax included"], "Total"),
        Language::De => ("Versand", ["Steuer", "Enthaltene MwSt."], "Gesamt"),
        Language::Fr => ("Livraison", ["Taxes", "Dont TVA"], "Total"),
        Language::Ja => ("送料", ["税", "うち消費税"], "合計"),
    };
    if let Some(amount) = confirmation.shipping {
        summary.push(format!("  {shipping}: {}", money(amount)));
    }
    let tax = tax[usize::from(confirmation.tax_included)];
    summary.push(format!("  {tax}: {}", money(confirmation.tax)));
    summary.push(format!("  {total}: {}", money(confirmation.total)));
    let paragraphs = [
        format!("{intro}\n\n{}", summary.join("\n")),
        language.order_link(&order.link).unwrap_or_default(),
    ];
    (
        subject.to_owned(),
        letter(language, order.name.as_deref(), &paragraphs),
    )
}

/// A seller shipped units of the order: with which carrier, the tracking number, what.
pub fn order_shipped(
    language: Language,
    order: &OrderRef,
    carrier: &str,
    tracking_number: &str,
    lines: &[(String, String, u32)],
) -> (String, String) {
    let id = order.id;
    let subject = match language {
        Language::En => "Your order has shipped",
        Language::De => "Ihre Bestellung ist unterwegs",
        Language::Fr => "Votre commande a été expédiée",
        Language::Ja => "ご注文の商品を発送しました",
    };
    let intro = match language {
        Language::En => format!(
            "Items of order {id} are on their way with {carrier}, tracking number {tracking_number}:"
        ),
        Language::De => format!(
            "Artikel Ihrer Bestellung {id} sind mit {carrier} unterwegs, Sendungsnummer {tracking_number}:"
        ),
        Language::Fr => format!(
            "Des articles de votre commande {id} sont en route avec {carrier}, numéro de suivi {tracking_number} :"
        ),
        Language::Ja => format!(
            "ご注文 {id} の商品を {carrier} にて発送しました。追跡番号: {tracking_number}"
        ),
    };
    let shipped: Vec<String> = lines
        .iter()
        .map(|(sku, title, quantity)| match title.is_empty() {
            true => format!("  {quantity} × {sku}"),
            false => format!("  {quantity} × {title} ({sku})"),
        })
        .collect();
    let paragraphs = [
        format!("{intro}\n\n{}", shipped.join("\n")),
        language.order_link(&order.link).unwrap_or_default(),
    ];
    (
        subject.to_owned(),
        letter(language, order.name.as_deref(), &paragraphs),
    )
}

/// The order, or some of it, was cancelled; `refunded` goes back to the card.
pub fn order_cancelled(
    language: Language,
    order: &OrderRef,
    refunded: Decimal,
) -> (String, String) {
    let id = order.id;
    let amount = language.money(refunded, order.currency);
    let subject = match language {
        Language::En => "Your order was cancelled",
        Language::De => "Ihre Bestellung wurde storniert",
        Language::Fr => "Votre commande a été annulée",
        Language::Ja => "ご注文がキャンセルされました",
    };
    let what = match language {
        Language::En => format!("Order {id}, or part of it, was cancelled."),
        Language::De => format!("Ihre Bestellung {id} wurde ganz oder teilweise storniert."),
        Language::Fr => format!("Votre commande {id} a été annulée en tout ou en partie."),
        Language::Ja => format!("ご注文 {id} の全部または一部がキャンセルされました。"),
    };
    let money_back = match (language, refunded.is_zero()) {
        (_, true) => String::new(),
        (Language::En, false) => format!("{amount} goes back to your card."),
        (Language::De, false) => format!("{amount} werden Ihrer Karte gutgeschrieben."),
        (Language::Fr, false) => format!("{amount} seront remboursés sur votre carte."),
        (Language::Ja, false) => format!("{amount} をカードに返金いたします。"),
    };
    let paragraphs = [
        format!("{what} {money_back}").trim_end().to_owned(),
        language.order_link(&order.link).unwrap_or_default(),
    ];
    (
        subject.to_owned(),
        letter(language, order.name.as_deref(), &paragraphs),
    )
}

/// Money went back to the shopper's card.
pub fn order_refunded(language: Language, order: &OrderRef, amount: Decimal) -> (String, String) {
    let id = order.id;
    let amount = language.money(amount, order.currency);
    let subject = match language {
        Language::En => "Your refund is on its way",
        Language::De => "Ihre Erstattung ist unterwegs",
        Language::Fr => "Votre remboursement est en cours",
        Language::Ja => "返金のお知らせ",
    };
    let what = match language {
        Language::En => format!(
            "{amount} of order {id} goes back to your card. It may take a few days to show."
        ),
        Language::De => format!(
            "{amount} aus Ihrer Bestellung {id} werden Ihrer Karte gutgeschrieben. Es kann einige Tage dauern, bis der Betrag erscheint."
        ),
        Language::Fr => format!(
            "{amount} de votre commande {id} sont remboursés sur votre carte. Le remboursement peut prendre quelques jours."
        ),
        Language::Ja => format!(
            "ご注文 {id} の {amount} をカードに返金いたしました。反映まで数日かかる場合があります。"
        ),
    };
    let paragraphs = [what, language.order_link(&order.link).unwrap_or_default()];
    (
        subject.to_owned(),
        letter(language, order.name.as_deref(), &paragraphs),
    )
}

/// The link that sets a new password, valid for `minutes`, once.
pub fn password_reset(
    language: Language,
    name: Option<&str>,
    link: &str,
    minutes: u64,
) -> (String, String) {
    let subject = match language {
        Language::En => "Reset your Agora password",
        Language::De => "Ihr Agora-Passwort zurücksetzen",
        Language::Fr => "Réinitialiser votre mot de passe Agora",
        Language::Ja => "Agora パスワードの再設定",
    };
    let (ask, once) = match language {
        Language::En => (
            format!("Someone (hopefully you) asked to reset the password of your Agora account. Open this link within {minutes} minutes to choose a new one:"),
            "The link works once. If you did not ask for it, ignore this message: your password stays as it is.",
        ),
        Language::De => (
            format!("Jemand (hoffentlich Sie) hat das Zurücksetzen des Passworts Ihres Agora-Kontos angefordert. Öffnen Sie innerhalb von {minutes} Minuten diesen Link, um ein neues zu wählen:"),
            "Der Link funktioniert nur einmal. Wenn Sie das nicht angefordert haben, ignorieren Sie diese Nachricht: Ihr Passwort bleibt unverändert.",
        ),
        Language::Fr => (
            format!("Quelqu’un (vous, espérons-le) a demandé à réinitialiser le mot de passe de votre compte Agora. Ouvrez ce lien dans les {minutes} minutes pour en choisir un nouveau :"),
            "Le lien ne fonctionne qu’une fois. Si vous n’êtes pas à l’origine de cette demande, ignorez ce message : votre mot de passe reste inchangé.",
        ),
        Language::Ja => (
            format!("Agora アカウントのパスワード再設定のご依頼を受け付けました。{minutes} 分以内に次のリンクを開き、新しいパスワードを設定してください。"),
            "このリンクは一度だけ使えます。お心当たりのない場合は、このメールを破棄してください。パスワードは変更されません。",
        ),
    };
    let paragraphs = [ask, link.to_owned(), once.to_owned()];
    (subject.to_owned(), letter(language, name, &paragraphs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::from_code("EUR").expect("EUR")
    }

    fn order() -> OrderRef {
        OrderRef {
            id: Uuid::nil(),
            name: Some("Jonas".into()),
            currency: eur(),
            link: "https://shop.example/orders/x".into(),
        }
    }

    #[test]
    fn a_locale_falls_back_to_the_store_default_then_english() {
        assert_eq!(Language::choose(Some("de-AT"), "en"), Language::De);
        assert_eq!(Language::choose(Some("pt-BR"), "fr"), Language::Fr);
        assert_eq!(Language::choose(None, "ja"), Language::Ja);
        assert_eq!(Language::choose(Some("pt"), "pt"), Language::En);
    }

    #[test]
    fn a_confirmation_lists_lines_and_totals_in_the_shoppers_language() {
        let confirmation = Confirmation {
            order: order(),
            lines: vec![ConfirmedLine {
                title: "Becher".into(),
                sku: "MUG-1".into(),
                quantity: 2,
                total: "1234.5".parse().expect("decimal"),
            }],
            shipping: Some("4.9".parse().expect("decimal")),
            tax: "3.19".parse().expect("decimal"),
            tax_included: true,
            total: "1239.40".parse().expect("decimal"),
        };
        let (subject, body) = order_confirmed(Language::De, &confirmation);
        assert_eq!(subject, "Ihre Agora-Bestellung ist bestätigt");
        assert!(body.starts_with("Hallo Jonas,"), "{body}");
        assert!(
            body.contains("2 × Becher (MUG-1)  1.234,50\u{a0}€"),
            "{body}"
        );
        assert!(body.contains("Versand: 4,90\u{a0}€"), "{body}");
        assert!(body.contains("Enthaltene MwSt.: 3,19\u{a0}€"), "{body}");
        assert!(body.contains("Gesamt: 1.239,40\u{a0}€"), "{body}");
        assert!(body.contains("https://shop.example/orders/x"), "{body}");
    }

    #[test]
    fn every_template_speaks_all_four_languages_differently() {
        let order = order();
        let amount: Decimal = "10".parse().expect("decimal");
        let lines = [("MUG-1".to_owned(), "Mug".to_owned(), 1)];
        for render in [
            &|lang| order_shipped(lang, &order, "DHL", "TRACK-1", &lines),
            &|lang| order_cancelled(lang, &order, amount),
            &|lang| order_refunded(lang, &order, amount),
            &|lang| password_reset(lang, None, "https://x/password-resets/t", 30),
        ] as [&dyn Fn(Language) -> (String, String); 4]
        {
            let subjects: std::collections::HashSet<String> =
                Language::ALL.iter().map(|lang| render(*lang).0).collect();
            assert_eq!(subjects.len(), 4, "{subjects:?}");
        }
        let (_, shipped) = order_shipped(Language::Fr, &order, "DHL", "TRACK-1", &lines);
        assert!(
            shipped.contains("DHL") && shipped.contains("TRACK-1"),
            "{shipped}"
        );
        let (_, refund) = order_refunded(Language::Ja, &order, amount);
        assert!(refund.contains("€10.00"), "{refund}");
    }
}
