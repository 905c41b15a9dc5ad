//! Delivery: the address and contact fields of every form that ships something (the cart's
//! delivery form and the flash-sale buy form), the domain's address built from them, each
//! refusal shown next to the field it names in the page's language, and the cart's delivery
//! form (its `POST /cart/shipping` is the cart's).
//!
//! The fields are those of the JSON API's address (`name`, `line1`, `line2`, `city`,
//! `postal_code`, `region`, `country`, `phone`) plus `email` for guests; the domain names a
//! refused one `address.postal_code` (cart) or `shipping.address.postal_code` (flash sale), and
//! the form shows it next to its `postal_code` input.

use maud::{html, Markup};
use serde::Deserialize;

use super::{context::PageContext, i18n::Lang};
use crate::{
    addresses::{self, Address, AddressInput},
    carts::CartView,
    error::{Code, Error},
    regions::Region,
    state::AppState,
};

/// The address and contact as a form sends them (every field may be missing or empty).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AddressFields {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub line1: String,
    #[serde(default)]
    pub line2: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub postal_code: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub email: String,
}

impl AddressFields {
    /// A stored address (and contact) as the form shows it.
    pub fn of(address: &Address, email: Option<&str>) -> Self {
        Self {
            name: address.name.clone(),
            line1: address.line1.clone(),
            line2: address.line2.clone().unwrap_or_default(),
            city: address.city.clone(),
            postal_code: address.postal_code.clone(),
            region: address.region.clone().unwrap_or_default(),
            country: address.country.clone(),
            phone: address.phone.clone().unwrap_or_default(),
            email: email.unwrap_or_default().to_owned(),
        }
    }

    /// The address as the domain checks it.
    pub fn input(&self) -> AddressInput {
        let optional = |value: &str| Some(value.to_owned()).filter(|v| !v.trim().is_empty());
        AddressInput {
            name: self.name.clone(),
            line1: self.line1.clone(),
            line2: optional(&self.line2),
            city: self.city.clone(),
            postal_code: self.postal_code.clone(),
            region: optional(&self.region),
            country: self.country.clone(),
            phone: optional(&self.phone),
        }
    }

    /// The contact email, checked; an empty field is none (a registered shopper's account
    /// email then serves, a guest's checkout is refused).
    pub fn email(&self) -> Result<Option<String>, Error> {
        match self.email.trim() {
            "" => Ok(None),
            email => addresses::parse_contact_email(email).map(Some),
        }
    }
}

/// Whether a refusal naming `field` is about the form's input `input`.
pub fn names(field: &str, input: &str) -> bool {
    let Some(rest) = field
        .strip_prefix("shipping.address.")
        .or_else(|| field.strip_prefix("address."))
    else {
        return field == input || (input == "country" && field == "shipping.country");
    };
    rest == input
}

/// The words for a refusal of an address or contact field, where the page knows the case.
pub fn words(lang: Lang, code: Code) -> Option<&'static str> {
    Some(match code {
        Code::InvalidAddress => lang.tr(
            "Please fill in this field: one line of at most 200 characters.",
            "Bitte dieses Feld ausfüllen: eine Zeile mit höchstens 200 Zeichen.",
            "Veuillez remplir ce champ : une ligne de 200 caractères au plus.",
            "この項目を入力してください（1行、200文字以内）。",
        ),
        Code::InvalidPostalCode => lang.tr(
            "Please check the postal code: it does not fit the country's format.",
            "Bitte die Postleitzahl prüfen: sie passt nicht zum Format des Landes.",
            "Vérifiez le code postal : il ne correspond pas au format du pays.",
            "郵便番号を確認してください。国の形式に合っていません。",
        ),
        Code::InvalidPhone => lang.tr(
            "A phone number has digits, spaces and + - ( ) only.",
            "Eine Telefonnummer besteht nur aus Ziffern, Leerzeichen und + - ( ).",
            "Un numéro de téléphone ne contient que des chiffres, des espaces et + - ( ).",
            "電話番号には数字、スペース、+ - ( ) のみ使えます。",
        ),
        Code::InvalidEmail => lang.tr(
            "This is not an email address.",
            "Das ist keine E-Mail-Adresse.",
            "Ce n’est pas une adresse e-mail.",
            "メールアドレスの形式ではありません。",
        ),
        Code::EmailRequired => lang.tr(
            "Please give an email address for news of your order.",
            "Bitte eine E-Mail-Adresse für Nachrichten zur Bestellung angeben.",
            "Indiquez une adresse e-mail pour le suivi de votre commande.",
            "注文のお知らせを受け取るメールアドレスを入力してください。",
        ),
        Code::AddressRequired => lang.tr(
            "Please enter the delivery address first.",
            "Bitte zuerst die Lieferadresse angeben.",
            "Indiquez d’abord l’adresse de livraison.",
            "先にお届け先の住所を入力してください。",
        ),
        Code::CountryOutsideRegion => lang.tr(
            "We do not deliver to this country from here.",
            "In dieses Land liefern wir von hier aus nicht.",
            "Nous ne livrons pas ce pays depuis ici.",
            "この国へはここからお届けできません。",
        ),
        _ => return None,
    })
}

/// The address fields (the country chosen among `region`'s), and the contact email where
/// `ask_email`; a refusal naming one of them is shown next to it.
pub fn fields(
    lang: Lang,
    region: &Region,
    values: &AddressFields,
    ask_email: bool,
    refused: Option<(&str, &str)>,
) -> Markup {
    let error_for = |input: &str| {
        refused
            .filter(|(field, _)| names(field, input))
            .map(|(_, text)| text)
    };
    let text_field = |input: &str, label: &str, value: &str, autocomplete: &str, required: bool| {
        let id = format!("ship-{input}");
        let error = error_for(input);
        html! {
            div.field {
                label for=(id) { (label) }
                input id=(id) name=(input) value=(value) autocomplete=(autocomplete) required[required]
                    aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| format!("{id}-error"))];
                @if let Some(error) = error { p.error id=(format!("{id}-error")) { (error) } }
            }
        }
    };
    let country_error = error_for("country");
    html! {
        (text_field("name", lang.tr("Full name", "Vollständiger Name", "Nom complet", "氏名"), &values.name, "name", true))
        (text_field("line1", lang.tr("Street and number", "Straße und Hausnummer", "Numéro et rue", "住所"), &values.line1, "address-line1", true))
        (text_field("line2", lang.tr("Address line 2 (optional)", "Adresszusatz (optional)", "Complément d’adresse (facultatif)", "建物名・部屋番号（任意）"), &values.line2, "address-line2", false))
        (text_field("postal_code", lang.tr("Postal code", "Postleitzahl", "Code postal", "郵便番号"), &values.postal_code, "postal-code", false))
        (text_field("city", lang.tr("City", "Ort", "Ville", "市区町村"), &values.city, "address-level2", true))
        (text_field("region", lang.tr("State or province (optional)", "Bundesland (optional)", "Région (facultatif)", "都道府県（任意）"), &values.region, "address-level1", false))
        div.field {
            label for="ship-country" { (lang.tr("Country", "Land", "Pays", "国")) }
            select #ship-country name="country" required autocomplete="country"
                aria-invalid=[country_error.map(|_| "true")] aria-describedby=[country_error.map(|_| "ship-country-error")] {
                @for country in &region.details.countries {
                    option value=(country) selected[values.country == *country] { (country) }
                }
            }
            @if let Some(error) = country_error { p.error id="ship-country-error" { (error) } }
        }
        (text_field("phone", lang.tr("Phone (optional)", "Telefon (optional)", "Téléphone (facultatif)", "電話番号（任意）"), &values.phone, "tel", false))
        @if ask_email { (email_field(lang, &values.email, error_for("email"))) }
    }
}

/// The contact email field (a guest's; a registered shopper's account email serves).
fn email_field(lang: Lang, value: &str, error: Option<&str>) -> Markup {
    let label = lang.tr(
        "Email for news of your order",
        "E-Mail für Nachrichten zur Bestellung",
        "E-mail pour le suivi de la commande",
        "注文のお知らせ用メールアドレス",
    );
    html! {
        div.field {
            label for="ship-email" { (label) }
            input #ship-email type="email" name="email" value=(value) autocomplete="email" required
                aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "ship-email-error")];
            @if let Some(error) = error { p.error #ship-email-error { (error) } }
        }
    }
}

/// A message for the shopper, shown above the cart (a refusal names its field, and is shown
/// next to it too where the field is the delivery form's, with what the shopper typed).
pub(super) struct Notice {
    pub(super) field: Option<String>,
    pub(super) text: String,
    pub(super) draft: Option<AddressFields>,
}

/// The registered shopper's default saved address, to start the delivery form with.
pub async fn saved_default(state: &AppState, context: &PageContext) -> Option<Address> {
    let signed_in = context.shopper.as_ref().filter(|s| !s.shopper.guest)?;
    let client = state.pool.get().await.ok()?;
    let saved = addresses::book::list(&*client, signed_in.shopper.id)
        .await
        .ok()?;
    saved
        .into_iter()
        .find(|address| address.default)
        .map(|saved| saved.address)
}

/// The cart's delivery form: what the shopper typed when it was refused, else the cart's
/// address, else their default saved one.
pub fn delivery_form(
    context: &PageContext,
    cart: &CartView,
    region: &Region,
    notice: Option<&Notice>,
    saved: Option<&Address>,
) -> Markup {
    let lang = context.lang;
    let chosen = cart.shipping.as_ref();
    let guest = context.shopper.as_ref().is_none_or(|s| s.shopper.guest);
    let values = match (
        notice.and_then(|n| n.draft.as_ref()),
        &cart.shipping_address,
    ) {
        (Some(draft), _) => draft.clone(),
        (None, Some(address)) => AddressFields::of(address, cart.contact_email.as_deref()),
        (None, None) => saved.map_or_else(AddressFields::default, |a| AddressFields::of(a, None)),
    };
    let values = AddressFields {
        email: match (&cart.contact_email, guest) {
            (Some(email), true) if values.email.is_empty() => email.clone(),
            _ => values.email,
        },
        ..values
    };
    let refused = notice.and_then(|n| Some((n.field.as_deref()?, n.text.as_str())));
    let option_error = refused
        .filter(|(field, _)| *field == "option")
        .map(|(_, t)| t);
    html! {
        form.shipping method="post" action="/cart/shipping" {
            input type="hidden" name="csrf" value=(context.csrf);
            h2 { (lang.tr("Delivery", "Lieferung", "Livraison", "配送")) }
            (fields(lang, region, &values, guest, refused))
            div.field {
                label for="option" { (lang.tr("Shipping option", "Versandart", "Mode de livraison", "配送方法")) }
                select #option name="option" required
                    aria-invalid=[option_error.map(|_| "true")] aria-describedby=[option_error.map(|_| "option-error")] {
                    @for option in &region.details.shipping_options {
                        option value=(option.id) selected[chosen.is_some_and(|s| s.option == option.id)] { (option.name) " (" (option.carrier) ")" }
                    }
                }
                @if let Some(error) = option_error { p.error id="option-error" { (error) } }
            }
            button type="submit" { (lang.tr("Save delivery", "Lieferung speichern", "Enregistrer la livraison", "配送先を保存")) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_shown_next_to_the_input_it_names() {
        assert!(names("address.postal_code", "postal_code"));
        assert!(names("shipping.address.postal_code", "postal_code"));
        assert!(names("email", "email"));
        assert!(names("shipping.country", "country"));
        assert!(!names("address.city", "postal_code"));
        assert!(!names("option", "postal_code"));
    }
}
