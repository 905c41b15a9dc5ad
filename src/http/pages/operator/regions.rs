//! The console's regions (`/operator/regions`): where the store sells, and a form to create
//! or edit one (name, currency, countries, tax rates, shipping options) through
//! `regions::put`, the same function as `PUT /api/v1/regions/{code}`. A refusal is shown next
//! to the field it names: the API's field paths (`tax_rates.DE`, `shipping_options[1].rate.amount`)
//! map to the form's inputs.

use std::collections::BTreeMap;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};

use super::{console_nav, operator_context, operator_gate};
use crate::http::pages::{
    context::PageContext,
    i18n::{query_value, Lang},
    layout::{self, PageError},
};
use crate::{
    error::{Code, Error},
    regions::{self, DeliveryDays, Region, RegionInput, ShippingOption, ShippingRate},
    state::AppState,
};

/// Blank rows the form offers beyond a region's own, to add tax rates and shipping options.
const SPARE_TAX_ROWS: usize = 2;
const SPARE_SHIPPING_ROWS: usize = 1;
/// Most rows a posted form may have (a region's limits, plus the spare ones).
const MAX_TAX_ROWS: usize = regions::MAX_COUNTRIES + SPARE_TAX_ROWS;
const MAX_SHIPPING_ROWS: usize = regions::MAX_SHIPPING_OPTIONS + SPARE_SHIPPING_ROWS;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::resource("/operator/regions")
            .route(web::get().to(show))
            .route(web::post().to(save)),
    );
}

#[derive(Debug, Default, Clone)]
struct TaxRow {
    country: String,
    rate: String,
}

#[derive(Debug, Default, Clone)]
struct ShippingRow {
    id: String,
    name: String,
    carrier: String,
    /// `flat` or `weight`.
    kind: String,
    amount: String,
    base: String,
    per_kg: String,
    min: String,
    max: String,
}

impl ShippingRow {
    fn is_blank(&self) -> bool {
        [
            &self.id,
            &self.name,
            &self.carrier,
            &self.amount,
            &self.base,
            &self.per_kg,
            &self.min,
            &self.max,
        ]
        .iter()
        .all(|value| value.trim().is_empty())
    }
}

/// The form as typed: every value raw, so a refused form comes back as it was sent.
#[derive(Debug, Default)]
struct Draft {
    code: String,
    /// Whether it edits a stored region (its code is then fixed).
    editing: bool,
    name: String,
    currency: String,
    countries: String,
    tax_inclusive: bool,
    tax_default: String,
    taxes: Vec<TaxRow>,
    shipping: Vec<ShippingRow>,
}

impl Draft {
    fn of(region: &Region) -> Self {
        let details = &region.details;
        Self {
            code: region.code.clone(),
            editing: true,
            name: details.name.clone(),
            currency: details.currency.clone(),
            countries: details.countries.join(", "),
            tax_inclusive: details.tax_inclusive,
            tax_default: details
                .tax_rates
                .get("default")
                .cloned()
                .unwrap_or_default(),
            taxes: details
                .tax_rates
                .iter()
                .filter(|(country, _)| *country != "default")
                .map(|(country, rate)| TaxRow {
                    country: country.clone(),
                    rate: rate.clone(),
                })
                .collect(),
            shipping: details.shipping_options.iter().map(shipping_row).collect(),
        }
    }

    /// The form's fields, by their names (`tax_country.0`, `ship.1.amount`, …).
    fn from_fields(fields: &[(String, String)]) -> Self {
        let mut draft = Self::default();
        for (name, value) in fields {
            let value = value.clone();
            match name.as_str() {
                "code" => draft.code = value,
                "editing" => draft.editing = value == "true",
                "name" => draft.name = value,
                "currency" => draft.currency = value,
                "countries" => draft.countries = value,
                "tax_inclusive" => draft.tax_inclusive = value == "true",
                "tax_default" => draft.tax_default = value,
                other => draft.row_field(other, value),
            }
        }
        // Spare rows left blank are offered again, not added to.
        while draft
            .taxes
            .last()
            .is_some_and(|row| row.country.trim().is_empty() && row.rate.trim().is_empty())
        {
            draft.taxes.pop();
        }
        while draft.shipping.last().is_some_and(ShippingRow::is_blank) {
            draft.shipping.pop();
        }
        draft
    }

    fn row_field(&mut self, name: &str, value: String) {
        let mut parts = name.split('.');
        let (kind, index, field) = (parts.next(), parts.next(), parts.next());
        let Some(index) = index.and_then(|i| i.parse::<usize>().ok()) else {
            return;
        };
        match (kind, field) {
            (Some("tax_country" | "tax_rate"), None) if index < MAX_TAX_ROWS => {
                if self.taxes.len() <= index {
                    self.taxes.resize(index + 1, TaxRow::default());
                }
                let row = &mut self.taxes[index];
                if kind == Some("tax_country") {
                    row.country = value;
                } else {
                    row.rate = value;
                }
            }
            (Some("ship"), Some(field)) if index < MAX_SHIPPING_ROWS => {
                if self.shipping.len() <= index {
                    self.shipping.resize(index + 1, ShippingRow::default());
                }
                let row = &mut self.shipping[index];
                let slot = match field {
                    "id" => &mut row.id,
                    "name" => &mut row.name,
                    "carrier" => &mut row.carrier,
                    "kind" => &mut row.kind,
                    "amount" => &mut row.amount,
                    "base" => &mut row.base,
                    "per_kg" => &mut row.per_kg,
                    "min" => &mut row.min,
                    "max" => &mut row.max,
                    _ => return,
                };
                *slot = value;
            }
            _ => {}
        }
    }

    /// The region this form asks for, and which form row each shipping option came from; a
    /// value the form itself cannot read is refused here, naming its input.
    fn input(&self) -> Result<(RegionInput, Vec<usize>), FieldError> {
        let countries: Vec<String> = self
            .countries
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(|country| country.trim().to_ascii_uppercase())
            .filter(|country| !country.is_empty())
            .collect();
        let mut tax_rates =
            BTreeMap::from([("default".to_owned(), self.tax_default.trim().to_owned())]);
        for (index, row) in self.taxes.iter().enumerate() {
            let country = row.country.trim().to_ascii_uppercase();
            if country.is_empty() && row.rate.trim().is_empty() {
                continue;
            }
            if country.is_empty() || tax_rates.contains_key(&country) {
                return Err(FieldError::form(
                    format!("tax-country-{index}"),
                    FormProblem::TaxCountry,
                ));
            }
            tax_rates.insert(country, row.rate.trim().to_owned());
        }
        let mut shipping_options = Vec::new();
        let mut rows = Vec::new();
        for (index, row) in self.shipping.iter().enumerate() {
            if row.is_blank() {
                continue;
            }
            let days = |raw: &str, which: &str| {
                raw.trim().parse::<u16>().map_err(|_| {
                    FieldError::form(format!("ship-{index}-{which}"), FormProblem::Days)
                })
            };
            let rate = if row.kind == "weight" {
                ShippingRate::Weight {
                    base: row.base.trim().to_owned(),
                    per_kg: row.per_kg.trim().to_owned(),
                }
            } else {
                ShippingRate::Flat {
                    amount: row.amount.trim().to_owned(),
                }
            };
            shipping_options.push(ShippingOption {
                id: row.id.trim().to_owned(),
                name: row.name.trim().to_owned(),
                carrier: row.carrier.trim().to_owned(),
                rate,
                delivery_days: DeliveryDays {
                    min: days(&row.min, "min")?,
                    max: days(&row.max, "max")?,
                },
            });
            rows.push(index);
        }
        let input = RegionInput {
            name: self.name.clone(),
            currency: self.currency.trim().to_owned(),
            countries,
            tax_inclusive: self.tax_inclusive,
            tax_rates,
            shipping_options,
        };
        Ok((input, rows))
    }

    /// The form input an API field path names (`region-form` when none does).
    fn input_of(&self, field: &str, code: Code, rows: &[usize]) -> String {
        let named = match field {
            "code" => "region-code",
            "name" => "region-name",
            "currency" => "region-currency",
            "tax_rates.default" => "tax-default",
            "shipping_options" => "shipping-options",
            f if f == "countries" || f.starts_with("countries[") => "region-countries",
            _ => "",
        };
        if !named.is_empty() {
            return named.to_owned();
        }
        if let Some(country) = field.strip_prefix("tax_rates.") {
            let row = self
                .taxes
                .iter()
                .position(|row| row.country.trim().eq_ignore_ascii_case(country));
            return match (row, code) {
                (Some(row), Code::InvalidCountry | Code::UnknownCountry) => {
                    format!("tax-country-{row}")
                }
                (Some(row), _) => format!("tax-rate-{row}"),
                (None, _) => "tax-default".to_owned(),
            };
        }
        if let Some(rest) = field.strip_prefix("shipping_options[") {
            let (index, path) = rest.split_once(']').unwrap_or((rest, ""));
            let row = index
                .parse::<usize>()
                .ok()
                .and_then(|index| rows.get(index))
                .copied();
            let Some(row) = row else {
                return "shipping-options".to_owned();
            };
            let which = match path.trim_start_matches('.') {
                "id" => "id",
                "name" => "name",
                "carrier" => "carrier",
                "rate.amount" => "amount",
                "rate.base" => "base",
                "rate.per_kg" => "per_kg",
                _ => "min",
            };
            return format!("ship-{row}-{which}");
        }
        "region-form".to_owned()
    }
}

fn shipping_row(option: &ShippingOption) -> ShippingRow {
    let (kind, amount, base, per_kg) = match &option.rate {
        ShippingRate::Flat { amount } => ("flat", amount.clone(), String::new(), String::new()),
        ShippingRate::Weight { base, per_kg } => {
            ("weight", String::new(), base.clone(), per_kg.clone())
        }
    };
    ShippingRow {
        id: option.id.clone(),
        name: option.name.clone(),
        carrier: option.carrier.clone(),
        kind: kind.to_owned(),
        amount,
        base,
        per_kg,
        min: option.delivery_days.min.to_string(),
        max: option.delivery_days.max.to_string(),
    }
}

/// What the form could not read itself.
#[derive(Debug, Clone, Copy)]
enum FormProblem {
    TaxCountry,
    Days,
}

/// A refusal and the input it is shown next to.
#[derive(Debug)]
struct FieldError {
    input: String,
    message: String,
    problem: Option<FormProblem>,
}

impl FieldError {
    fn form(input: String, problem: FormProblem) -> Self {
        Self {
            input,
            message: String::new(),
            problem: Some(problem),
        }
    }

    fn text(&self, lang: Lang) -> String {
        match self.problem {
            Some(FormProblem::TaxCountry) => lang
                .tr(
                    "Name the country of this rate, once.",
                    "Geben Sie das Land dieses Satzes an, nur einmal.",
                    "Indiquez le pays de ce taux, une seule fois.",
                    "この税率の国を一度だけ指定してください。",
                )
                .to_owned(),
            Some(FormProblem::Days) => lang
                .tr(
                    "A whole number of days.",
                    "Eine ganze Zahl von Tagen.",
                    "Un nombre entier de jours.",
                    "日数を整数で入力してください。",
                )
                .to_owned(),
            None => self.message.clone(),
        }
    }
}

/// A domain refusal in the page's language where the code is one this form meets often (the
/// domain's own words otherwise).
fn refusal_words(lang: Lang, error: &Error) -> String {
    let words = match error.code() {
        Code::InvalidCountry => lang.tr(
            "Use two-letter ISO codes such as DE.",
            "Verwenden Sie ISO-Codes aus zwei Buchstaben wie DE.",
            "Utilisez des codes ISO à deux lettres comme DE.",
            "DE のような2文字のISOコードを使ってください。",
        ),
        Code::UnknownCountry => lang.tr(
            "This country is not one of the region's countries.",
            "Dieses Land gehört nicht zu den Ländern der Region.",
            "Ce pays ne fait pas partie des pays de la région.",
            "この国は地域の国に含まれていません。",
        ),
        Code::InvalidTaxRate => lang.tr(
            "A decimal fraction from 0 to 1 with at most 4 decimals, e.g. 0.19.",
            "Ein Dezimalbruch von 0 bis 1 mit höchstens 4 Nachkommastellen, z. B. 0.19.",
            "Une fraction décimale de 0 à 1, 4 décimales au plus, p. ex. 0.19.",
            "0〜1の小数(小数点以下4桁まで)。例: 0.19",
        ),
        Code::InvalidAmount | Code::NegativeAmount | Code::TooPrecise | Code::AmountTooLarge => {
            lang.tr(
                "An amount in the region's currency, such as 4.90.",
                "Ein Betrag in der Währung der Region, z. B. 4.90.",
                "Un montant dans la devise de la région, p. ex. 4.90.",
                "地域の通貨での金額(例: 4.90)。",
            )
        }
        Code::MissingField => lang.tr("Required.", "Pflichtfeld.", "Obligatoire.", "必須です。"),
        Code::InvalidLength => lang.tr(
            "Required, at most 100 characters.",
            "Pflichtfeld, höchstens 100 Zeichen.",
            "Obligatoire, 100 caractères au plus.",
            "必須、100文字以内。",
        ),
        Code::InvalidCountries => lang.tr(
            "List 1 to 100 countries.",
            "Geben Sie 1 bis 100 Länder an.",
            "Indiquez de 1 à 100 pays.",
            "1〜100か国を指定してください。",
        ),
        Code::InvalidRegionCode => lang.tr(
            "2 to 16 letters, digits, _ or -.",
            "2 bis 16 Buchstaben, Ziffern, _ oder -.",
            "2 à 16 lettres, chiffres, _ ou -.",
            "2〜16文字の英数字、_ または -。",
        ),
        Code::InvalidShippingOptionId => lang.tr(
            "1 to 64 characters, unique in the region.",
            "1 bis 64 Zeichen, eindeutig in der Region.",
            "1 à 64 caractères, unique dans la région.",
            "1〜64文字、地域内で一意。",
        ),
        Code::InvalidDeliveryDays => lang.tr(
            "The minimum must not exceed the maximum.",
            "Das Minimum darf das Maximum nicht übersteigen.",
            "Le minimum ne doit pas dépasser le maximum.",
            "最小日数は最大日数以下にしてください。",
        ),
        Code::CountryInOtherRegion => {
            let prefix = lang.tr(
                "A country belongs to another region already",
                "Ein Land gehört schon zu einer anderen Region",
                "Un pays appartient déjà à une autre région",
                "他の地域に属する国があります",
            );
            return format!("{prefix} ({error})");
        }
        _ => return error.to_string(),
    };
    words.to_owned()
}

/// `GET /operator/regions?edit=CODE`: the regions, and the form for a new one or `CODE`.
pub async fn show(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let context = match operator_context(&request, &state).await {
        Ok(context) => context,
        Err(sign_in) => return Ok(*sign_in),
    };
    let client = state.pool.get().await?;
    let stored = regions::list(&*client).await?;
    drop(client);
    let edit = query_value(&request, "edit");
    let draft = match edit.as_deref() {
        Some(code) => match stored.iter().find(|r| r.code.eq_ignore_ascii_case(code)) {
            Some(region) => Draft::of(region),
            None => return Err(Error::NotFound("region").into()),
        },
        None => Draft {
            currency: context.currency.code().to_owned(),
            ..Draft::default()
        },
    };
    let saved = query_value(&request, "saved");
    let page = regions_page(&context, &stored, &draft, None, saved.as_deref());
    Ok(context.render(StatusCode::OK, page))
}

/// `POST /operator/regions`: creates or replaces the region; the list again when saved, the
/// form with its refusal otherwise.
pub async fn save(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    let csrf = form
        .iter()
        .find(|(name, _)| name == "csrf")
        .map_or("", |(_, value)| value.as_str());
    context.check_csrf(&request, csrf)?;
    let context = match operator_gate(&request, &state, context) {
        Ok(context) => context,
        Err(sign_in) => return Ok(*sign_in),
    };
    let draft = Draft::from_fields(&form);
    let refused = match draft.input() {
        Err(refused) => (refused, StatusCode::UNPROCESSABLE_ENTITY),
        Ok((input, rows)) => {
            let client = state.pool.get().await?;
            match regions::put(&*client, &draft.code, input, &state.pricing).await {
                Ok((region, _)) => {
                    let to = format!("/operator/regions?saved={}", layout::encode(&region.code));
                    return Ok(context.redirect(&to));
                }
                Err(error) if error.status_code().is_client_error() => {
                    let field = error.field().unwrap_or("");
                    let refused = FieldError {
                        input: draft.input_of(field, error.code(), &rows),
                        message: refusal_words(context.lang, &error),
                        problem: None,
                    };
                    (refused, error.status_code())
                }
                Err(error) => return Err(error.into()),
            }
        }
    };
    let client = state.pool.get().await?;
    let stored = regions::list(&*client).await?;
    drop(client);
    let (refused, status) = refused;
    let page = regions_page(&context, &stored, &draft, Some(&refused), None);
    Ok(context.render(status, page))
}

fn regions_page(
    context: &PageContext,
    stored: &[Region],
    draft: &Draft,
    refused: Option<&FieldError>,
    saved: Option<&str>,
) -> Markup {
    let lang = context.lang;
    let title = lang.tr("Regions", "Regionen", "Régions", "地域");
    let body = html! {
        h1 { (title) }
        (console_nav(context, "/operator/regions"))
        div #region-notice role="status" {
            @if let Some(code) = saved {
                p.ok { (lang.tr("Region saved:", "Region gespeichert:", "Région enregistrée :", "地域を保存しました:")) " " (code) }
            }
        }
        (regions_table(lang, stored))
        (region_form(context, draft, refused))
    };
    layout::page(context, title, body)
}

fn regions_table(lang: Lang, stored: &[Region]) -> Markup {
    html! {
        @if stored.is_empty() {
            p.empty { (lang.tr("No region yet: the store sells nowhere until one is created.", "Noch keine Region: der Shop verkauft erst, wenn eine angelegt ist.", "Aucune région : la boutique ne vend nulle part tant qu’aucune n’est créée.", "地域がまだありません。作成するまで販売できません。")) }
        } @else {
            table.lines #regions {
                caption.visually-hidden { (lang.tr("Regions", "Regionen", "Régions", "地域")) }
                thead { tr {
                    th scope="col" { (lang.tr("Code", "Code", "Code", "コード")) }
                    th scope="col" { (lang.tr("Name", "Name", "Nom", "名前")) }
                    th scope="col" { (lang.tr("Currency", "Währung", "Devise", "通貨")) }
                    th scope="col" { (lang.tr("Countries", "Länder", "Pays", "国")) }
                    th scope="col" { (lang.tr("Tax", "Steuer", "Taxe", "税")) }
                    th scope="col" { (lang.tr("Shipping options", "Versandarten", "Modes de livraison", "配送方法")) }
                    th scope="col" { span.visually-hidden { (lang.tr("Action", "Aktion", "Action", "操作")) } }
                } }
                tbody {
                    @for region in stored {
                        @let details = &region.details;
                        tr data-region=(region.code) {
                            th scope="row" { (region.code) }
                            td { (details.name) }
                            td { (details.currency) }
                            td { (details.countries.join(", ")) }
                            td {
                                (details.tax_rates.get("default").map(String::as_str).unwrap_or("—"))
                                @for (key, rate) in details.tax_rates.iter().filter(|(key, _)| *key != "default") { ", " (key) " " (rate) }
                                " (" @if details.tax_inclusive { (lang.tr("included", "enthalten", "incluse", "込み")) } @else { (lang.tr("added", "zuzüglich", "en sus", "別")) } ")"
                            }
                            td { @for (i, option) in details.shipping_options.iter().enumerate() { @if i > 0 { ", " } (option.name) " (" (option.carrier) ")" } }
                            td { a href=(format!("/operator/regions?edit={}", layout::encode(&region.code))) { (lang.tr("Edit", "Bearbeiten", "Modifier", "編集")) span.visually-hidden { " " (region.code) } } }
                        }
                    }
                }
            }
        }
    }
}

/// One labelled input with its refusal, if it has one.
fn text_field(
    id: &str,
    name: &str,
    label: &str,
    value: &str,
    refused: Option<&FieldError>,
    lang: Lang,
) -> Markup {
    let error = refused.filter(|r| r.input == id).map(|r| r.text(lang));
    html! {
        div.field {
            label for=(id) { (label) }
            input id=(id) name=(name) value=(value) aria-invalid=[error.as_ref().map(|_| "true")]
                aria-describedby=[error.as_ref().map(|_| format!("{id}-error"))];
            @if let Some(error) = &error { p.error id=(format!("{id}-error")) { (error) } }
        }
    }
}

fn region_form(context: &PageContext, draft: &Draft, refused: Option<&FieldError>) -> Markup {
    let lang = context.lang;
    let field = |id: &str, name: &str, label: &str, value: &str| {
        text_field(id, name, label, value, refused, lang)
    };
    let code_error = refused
        .filter(|r| r.input == "region-code")
        .map(|r| r.text(lang));
    let heading = if draft.editing {
        lang.tr(
            "Edit region",
            "Region bearbeiten",
            "Modifier la région",
            "地域を編集",
        )
    } else {
        lang.tr("New region", "Neue Region", "Nouvelle région", "新しい地域")
    };
    html! {
        form #region-form .region method="post" action="/operator/regions" aria-labelledby="region-form-heading" {
            h2 #region-form-heading { (heading) @if draft.editing { " " (draft.code) } }
            @if let Some(refused) = refused.filter(|r| r.input == "region-form") {
                p.error role="alert" { (refused.text(lang)) }
            } @else if refused.is_some() {
                p.error role="alert" { (lang.tr("The region was not saved: see the field marked below.", "Die Region wurde nicht gespeichert: siehe das markierte Feld.", "La région n’a pas été enregistrée : voir le champ signalé ci-dessous.", "地域は保存されませんでした。下の項目を確認してください。")) }
            }
            input type="hidden" name="csrf" value=(context.csrf);
            input type="hidden" name="editing" value=(draft.editing);
            fieldset {
                legend { (lang.tr("Region", "Region", "Région", "地域")) }
                div.field {
                    label for="region-code" { (lang.tr("Code", "Code", "Code", "コード")) }
                    input #region-code name="code" value=(draft.code) required readonly[draft.editing]
                        aria-invalid=[code_error.as_ref().map(|_| "true")] aria-describedby=[code_error.as_ref().map(|_| "region-code-error")];
                    @if let Some(error) = &code_error { p.error #region-code-error { (error) } }
                }
                (field("region-name", "name", lang.tr("Name", "Name", "Nom", "名前"), &draft.name))
                (currency_field(context, draft, refused))
                (field("region-countries", "countries", lang.tr("Countries (ISO codes, separated by commas)", "Länder (ISO-Codes, durch Kommas getrennt)", "Pays (codes ISO, séparés par des virgules)", "国(ISOコード、カンマ区切り)"), &draft.countries))
                div.field.check {
                    input #region-tax-inclusive type="checkbox" name="tax_inclusive" value="true" checked[draft.tax_inclusive];
                    label for="region-tax-inclusive" { (lang.tr("Prices include tax", "Preise enthalten Steuern", "Prix toutes taxes comprises", "価格は税込み")) }
                }
            }
            (tax_fieldset(lang, draft, refused))
            (shipping_fieldset(lang, draft, refused))
            button type="submit" { (lang.tr("Save region", "Region speichern", "Enregistrer la région", "地域を保存")) }
            @if draft.editing { " " a href="/operator/regions" { (lang.tr("New region instead", "Stattdessen neue Region", "Plutôt une nouvelle région", "新しい地域を作成")) } }
        }
    }
}

fn currency_field(context: &PageContext, draft: &Draft, refused: Option<&FieldError>) -> Markup {
    let lang = context.lang;
    let error = refused
        .filter(|r| r.input == "region-currency")
        .map(|r| r.text(lang));
    html! {
        div.field {
            label for="region-currency" { (lang.tr("Currency", "Währung", "Devise", "通貨")) }
            select #region-currency name="currency" aria-invalid=[error.as_ref().map(|_| "true")]
                aria-describedby=[error.as_ref().map(|_| "region-currency-error")] {
                @for currency in &context.currencies {
                    option value=(currency.code()) selected[draft.currency.trim() == currency.code()] { (currency.code()) }
                }
            }
            @if let Some(error) = &error { p.error #region-currency-error { (error) } }
        }
    }
}

fn tax_fieldset(lang: Lang, draft: &Draft, refused: Option<&FieldError>) -> Markup {
    let rows = draft.taxes.len() + SPARE_TAX_ROWS;
    let blank = TaxRow::default();
    html! {
        fieldset #tax-rates {
            legend { (lang.tr("Tax rates", "Steuersätze", "Taux de taxe", "税率")) }
            p.hint { (lang.tr("Decimal fractions, e.g. 0.19 for 19 %; a country’s own rate overrides the default.", "Dezimalbrüche, z. B. 0.19 für 19 %; der Satz eines Landes ersetzt den Standardsatz.", "Fractions décimales, p. ex. 0.19 pour 19 % ; le taux d’un pays remplace le taux par défaut.", "小数で指定(19%なら 0.19)。国別の税率は既定の税率より優先されます。")) }
            (text_field("tax-default", "tax_default", lang.tr("Default rate", "Standardsatz", "Taux par défaut", "既定の税率"), &draft.tax_default, refused, lang))
            @for index in 0..rows {
                @let row = draft.taxes.get(index).unwrap_or(&blank);
                @let number = index + 1;
                div.two {
                    (text_field(&format!("tax-country-{index}"), &format!("tax_country.{index}"), &format!("{} {number}", lang.tr("Country", "Land", "Pays", "国")), &row.country, refused, lang))
                    (text_field(&format!("tax-rate-{index}"), &format!("tax_rate.{index}"), &format!("{} {number}", lang.tr("Rate", "Satz", "Taux", "税率")), &row.rate, refused, lang))
                }
            }
        }
    }
}

fn shipping_fieldset(lang: Lang, draft: &Draft, refused: Option<&FieldError>) -> Markup {
    let rows = draft.shipping.len() + SPARE_SHIPPING_ROWS;
    let blank = ShippingRow::default();
    let whole = refused
        .filter(|r| r.input == "shipping-options")
        .map(|r| r.text(lang));
    html! {
        fieldset #shipping-options {
            legend { (lang.tr("Shipping options", "Versandarten", "Modes de livraison", "配送方法")) }
            @if let Some(error) = &whole { p.error { (error) } }
            p.hint { (lang.tr("Leave a row empty to remove it. A weight rate charges the base plus the per-kg amount for every started kilogram.", "Eine leere Zeile entfällt. Ein Gewichtstarif berechnet die Grundgebühr plus den Betrag je angefangenem Kilogramm.", "Une ligne vide est supprimée. Un tarif au poids facture la base plus le montant par kilogramme entamé.", "空の行は削除されます。重量制は基本料金に、1kgごとの料金を加算します。")) }
            @for index in 0..rows {
                @let row = draft.shipping.get(index).unwrap_or(&blank);
                (shipping_row_fields(lang, index, row, refused))
            }
        }
    }
}

fn shipping_row_fields(
    lang: Lang,
    index: usize,
    row: &ShippingRow,
    refused: Option<&FieldError>,
) -> Markup {
    let id = |which: &str| format!("ship-{index}-{which}");
    let name = |which: &str| format!("ship.{index}.{which}");
    let field = |which: &str, label: &str, value: &str| {
        text_field(&id(which), &name(which), label, value, refused, lang)
    };
    html! {
        fieldset.shipping-option {
            legend { (lang.tr("Option", "Option", "Option", "配送方法")) " " (index + 1) }
            div.two {
            (field("id", lang.tr("Id", "Kennung", "Identifiant", "ID"), &row.id))
            (field("name", lang.tr("Name", "Name", "Nom", "名前"), &row.name))
            (field("carrier", lang.tr("Carrier", "Versanddienst", "Transporteur", "配送業者"), &row.carrier))
            div.field {
                label for=(id("kind")) { (lang.tr("Rate", "Tarif", "Tarif", "料金体系")) }
                select id=(id("kind")) name=(name("kind")) {
                    option value="flat" selected[row.kind != "weight"] { (lang.tr("Flat", "Pauschal", "Forfait", "定額")) }
                    option value="weight" selected[row.kind == "weight"] { (lang.tr("By weight", "Nach Gewicht", "Au poids", "重量制")) }
                }
            }
            (field("amount", lang.tr("Flat amount", "Pauschalbetrag", "Montant forfaitaire", "定額料金"), &row.amount))
            (field("base", lang.tr("Base amount (by weight)", "Grundbetrag (nach Gewicht)", "Montant de base (au poids)", "基本料金(重量制)"), &row.base))
            (field("per_kg", lang.tr("Per started kg (by weight)", "Je angefangenem kg (nach Gewicht)", "Par kg entamé (au poids)", "1kgごと(重量制)"), &row.per_kg))
            (field("min", lang.tr("Delivery days, from", "Lieferzeit in Tagen, von", "Délai en jours, de", "配送日数(最短)"), &row.min))
            (field("max", lang.tr("Delivery days, to", "Lieferzeit in Tagen, bis", "Délai en jours, à", "配送日数(最長)"), &row.max))
            }
        }
    }
}
