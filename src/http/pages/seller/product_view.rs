//! The product form drawn: languages, prices and variants, each input labelled and named by
//! the catalog's JSON path, with its refusal next to it.

use std::collections::BTreeMap;

use maud::{html, Markup};

use super::{
    field, input_id,
    product_form::{ProductForm, VariantRow},
    text_area, Refusals,
};
use crate::{
    http::pages::{context::PageContext, i18n::Lang, layout::encode},
    money::Currency,
};

/// What the form draws besides its values.
pub struct FormFrame<'a> {
    pub context: &'a PageContext,
    pub action: &'a str,
    pub currencies: &'a [Currency],
    /// Stock on hand of the product's variants, by SKU (editing only).
    pub stock: &'a BTreeMap<String, i32>,
    pub refusals: &'a Refusals,
}

/// The whole form.
pub fn render(form: &ProductForm, frame: &FormFrame) -> Markup {
    let lang = frame.context.lang;
    let editing = form.variants.iter().any(|v| v.existing);
    html! {
        form.product-form method="post" action=(frame.action) novalidate {
            input type="hidden" name="csrf" value=(frame.context.csrf);
            (frame.refusals.summary())
            fieldset {
                legend { (lang.tr("Languages", "Sprachen", "Langues", "言語")) }
                p.hint { (lang.tr(
                    "Write the title (and a description) in each language you sell in; leave a language empty to leave it out.",
                    "Titel (und Beschreibung) in jeder Verkaufssprache angeben; eine leere Sprache entfällt.",
                    "Indiquez le titre (et une description) dans chaque langue de vente ; une langue vide est omise.",
                    "販売する言語ごとにタイトル（と説明）を入力します。空欄の言語は省かれます。")) }
                (default_locale_select(form, lang, frame.refusals))
                div.two {
                    @for content in &form.content {
                        fieldset.locale {
                            legend lang=(content.locale) { (locale_name(&content.locale)) }
                            (field(&format!("content.{}.title", content.locale), lang.tr("Title", "Titel", "Titre", "タイトル"), "text", &content.title, frame.refusals, None))
                            (text_area(&format!("content.{}.description", content.locale), lang.tr("Description", "Beschreibung", "Description", "説明"), &content.description, frame.refusals, None))
                        }
                    }
                }
            }
            fieldset {
                legend { (lang.tr("Prices and variants", "Preise und Varianten", "Prix et variantes", "価格とバリエーション")) }
                (base_currency_select(form, lang, frame, editing))
                @for (row, variant) in form.variants.iter().enumerate() {
                    (variant_fields(row, variant, frame))
                }
                button type="submit" name="add_variant" value="true" .secondary formnovalidate {
                    (lang.tr("Add another variant row", "Weitere Variantenzeile", "Ajouter une ligne de variante", "バリエーション行を追加"))
                }
            }
            button type="submit" { (lang.tr("Save product", "Produkt speichern", "Enregistrer le produit", "商品を保存")) }
        }
    }
}

fn locale_name(tag: &str) -> String {
    match Lang::parse(tag) {
        Some(lang) if lang.tag() == tag => lang.native_name().to_owned(),
        _ => tag.to_owned(),
    }
}

fn default_locale_select(form: &ProductForm, lang: Lang, refusals: &Refusals) -> Markup {
    let error = refusals.of("default_locale");
    html! {
        div.field {
            label for=(input_id("default_locale")) { (lang.tr("Default language", "Standardsprache", "Langue par défaut", "既定の言語")) }
            select id=(input_id("default_locale")) name="default_locale"
                aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "f-default_locale-error")] {
                @for content in &form.content {
                    option value=(content.locale) selected[content.locale == form.default_locale] { (locale_name(&content.locale)) }
                }
            }
            @if let Some(error) = error { p.error #f-default_locale-error { (error) } }
        }
    }
}

fn base_currency_select(
    form: &ProductForm,
    lang: Lang,
    frame: &FormFrame,
    editing: bool,
) -> Markup {
    let error = frame.refusals.of("base_currency");
    html! {
        div.field {
            label for=(input_id("base_currency")) { (lang.tr("Base currency", "Basiswährung", "Devise de base", "基準通貨")) }
            select id=(input_id("base_currency")) name="base_currency"
                aria-invalid=[error.map(|_| "true")] aria-describedby=(if error.is_some() { "f-base_currency-error" } else { "f-base_currency-hint" }) {
                @if !editing {
                    option value="" selected[form.base_currency.is_empty()] { (lang.tr("Automatic", "Automatisch", "Automatique", "自動")) }
                }
                @for currency in frame.currencies {
                    option value=(currency.code()) selected[currency.code() == form.base_currency] { (currency.code()) }
                }
            }
            @if let Some(error) = error { p.error #f-base_currency-error { (error) } }
            @else { p.hint #f-base_currency-hint { (lang.tr(
                "Prices you leave empty are converted from it at the store's rates.",
                "Leere Preise werden zum Kurs des Shops daraus umgerechnet.",
                "Les prix laissés vides en sont convertis au taux de la boutique.",
                "空欄の価格はストアの為替レートでこの通貨から換算されます。")) } }
        }
    }
}

fn variant_fields(row: usize, variant: &VariantRow, frame: &FormFrame) -> Markup {
    let lang = frame.context.lang;
    let refusals = frame.refusals;
    let name = |part: &str| format!("variants[{row}].{part}");
    let legend = if variant.existing {
        format!(
            "{} {}",
            lang.tr("Variant", "Variante", "Variante", "バリエーション"),
            variant.sku
        )
    } else {
        lang.tr(
            "New variant (leave empty to skip)",
            "Neue Variante (leer lassen zum Überspringen)",
            "Nouvelle variante (laisser vide pour ignorer)",
            "新しいバリエーション（不要なら空欄）",
        )
        .to_owned()
    };
    html! {
        fieldset.variant-row {
            legend { (legend) }
            @if variant.existing {
                input type="hidden" name=(name("existing")) value="true";
                input type="hidden" name=(name("sku")) value=(variant.sku);
                p {
                    (lang.tr("Stock on hand:", "Bestand:", "Stock disponible :", "在庫数:")) " "
                    strong { (frame.stock.get(&variant.sku).copied().unwrap_or_default()) } " · "
                    a href=(format!("/seller/stock/{}", encode(&variant.sku))) {
                        (lang.tr("Set or adjust stock", "Bestand setzen oder anpassen", "Définir ou ajuster le stock", "在庫を設定・調整")) }
                }
            } @else {
                (field(&name("sku"), "SKU", "text", &variant.sku, refusals, None))
                (field(&name("stock"), lang.tr("Stock on hand", "Bestand", "Stock disponible", "在庫数"), "number", &variant.stock, refusals, None))
            }
            div.two.prices {
                @for currency in frame.currencies {
                    @let code = currency.code();
                    (field(&name(&format!("prices.{code}")),
                        &format!("{} ({code})", lang.tr("Price", "Preis", "Prix", "価格")),
                        "text", variant.prices.get(code).map(String::as_str).unwrap_or_default(), refusals, None))
                }
            }
            (text_area(&name("attributes"), lang.tr("Attributes", "Merkmale", "Attributs", "属性"), &variant.attributes, refusals,
                Some(lang.tr("One per line, as name=value (e.g. colour=red).", "Eines pro Zeile als Name=Wert (z. B. farbe=rot).", "Un par ligne, sous la forme nom=valeur (ex. couleur=rouge).", "1行に1つ、名前=値 の形式（例: color=red）。"))))
            (text_area(&name("image_urls"), lang.tr("Image URLs", "Bild-URLs", "URL des images", "画像URL"), &variant.image_urls, refusals,
                Some(lang.tr("One https:// address per line.", "Eine https://-Adresse pro Zeile.", "Une adresse https:// par ligne.", "1行に1つの https:// アドレス。"))))
            (field(&name("weight_grams"), lang.tr("Weight (grams)", "Gewicht (Gramm)", "Poids (grammes)", "重量（グラム）"), "number", &variant.weight_grams, refusals, None))
        }
    }
}
