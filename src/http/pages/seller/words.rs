//! The console's words that depend on what happened: the domain's refusals by their code,
//! the confirmations after a change, and the states of sales.

use crate::{
    error::{Code, Error},
    flash_sales::SaleState,
    http::pages::i18n::Lang,
};

/// A refusal in the page's language. In English a field's refusal keeps the domain's own
/// words (they name the limit); elsewhere it is said by its code, and a code the console
/// does not expect keeps the domain's words.
pub fn refusal(lang: Lang, error: &Error) -> String {
    if let Error::InsufficientStock { available } = error {
        return match lang {
            Lang::En => format!("Only {available} units are available."),
            Lang::De => format!("Nur {available} Einheiten verfügbar."),
            Lang::Fr => format!("Seulement {available} unités disponibles."),
            Lang::Ja => format!("在庫は{available}点のみです。"),
        };
    }
    let attributes = error.code() == Code::InvalidField
        && error
            .field()
            .is_some_and(|field| field.ends_with(".attributes"));
    if attributes && lang != Lang::En {
        return lang
            .tr(
                "",
                "Jedes Merkmal als Name=Wert in eine eigene Zeile schreiben.",
                "Écrivez chaque attribut sous la forme nom=valeur, un par ligne.",
                "属性は1行に1つ、名前=値 の形式で入力してください。",
            )
            .to_owned();
    }
    let precise = matches!(error, Error::InvalidField { .. });
    if lang == Lang::En && precise {
        return sentence(&error.to_string());
    }
    match by_code(lang, error.code()) {
        Some(words) => words.to_owned(),
        None => sentence(&error.to_string()),
    }
}

/// `must be …` → `Must be ….`
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut text: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// The words for a refusal of the console's sign-in, orders and product texts.
fn by_code(lang: Lang, code: Code) -> Option<&'static str> {
    let words = match code {
        Code::Unauthorized => lang.tr(
            "This API key is not valid: it is unknown, was replaced, or its seller is suspended.",
            "Dieser API-Schlüssel ist ungültig: unbekannt, ersetzt oder der Verkäufer ist gesperrt.",
            "Cette clé d’API n’est pas valable : inconnue, remplacée ou vendeur suspendu.",
            "このAPIキーは無効です（不明、交換済み、または出品者が停止中）。",
        ),
        Code::NotFound => lang.tr("Not found.", "Nicht gefunden.", "Introuvable.", "見つかりません。"),
        Code::InvalidTransition => lang.tr(
            "This order part is not in a state that allows this any more; the page shows it as it is now.",
            "Dieser Bestellteil lässt das in seinem Zustand nicht mehr zu; die Seite zeigt ihn aktuell.",
            "Cette partie de commande ne le permet plus dans son état actuel ; la page l’affiche à jour.",
            "この注文は現在の状態ではこの操作ができません。最新の状態を表示しています。",
        ),
        Code::PaymentNotCaptured => lang.tr(
            "The payment is not captured yet; try the refund again in a moment.",
            "Die Zahlung ist noch nicht eingezogen; bitte gleich noch einmal erstatten.",
            "Le paiement n’est pas encore encaissé ; réessayez le remboursement dans un instant.",
            "支払いがまだ確定していません。しばらくしてから返金してください。",
        ),
        Code::InvalidLength => lang.tr(
            "Empty or too long.",
            "Leer oder zu lang.",
            "Vide ou trop long.",
            "空欄か、長すぎます。",
        ),
        Code::InvalidSku => lang.tr(
            "An SKU is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
            "Eine SKU hat 1 bis 64 Buchstaben, Ziffern, '.', '_' oder '-' und beginnt mit einem Buchstaben oder einer Ziffer.",
            "Un SKU compte 1 à 64 lettres, chiffres, '.', '_' ou '-', et commence par une lettre ou un chiffre.",
            "SKUは英数字・'.'・'_'・'-'の1〜64文字で、英数字で始まります。",
        ),
        Code::DuplicateSku => lang.tr(
            "This SKU appears twice.",
            "Diese SKU kommt doppelt vor.",
            "Ce SKU apparaît deux fois.",
            "このSKUが重複しています。",
        ),
        Code::SkuTaken => lang.tr(
            "Another product already has this SKU.",
            "Ein anderes Produkt hat diese SKU bereits.",
            "Un autre produit a déjà ce SKU.",
            "このSKUは別の商品で使われています。",
        ),
        _ => return prices_and_variants(lang, code),
    };
    Some(words)
}

/// The words for refusals of a product form's prices, content and variants, and of stock and
/// sales forms.
fn prices_and_variants(lang: Lang, code: Code) -> Option<&'static str> {
    let words = match code {
        Code::MissingPrice => lang.tr(
            "Give at least one price.",
            "Mindestens einen Preis angeben.",
            "Indiquez au moins un prix.",
            "価格を1つ以上入力してください。",
        ),
        Code::MissingBasePrice => lang.tr(
            "Every variant needs a price in the base currency.",
            "Jede Variante braucht einen Preis in der Basiswährung.",
            "Chaque variante doit avoir un prix dans la devise de base.",
            "すべてのバリエーションに基準通貨の価格が必要です。",
        ),
        Code::InvalidAmount | Code::NegativeAmount => lang.tr(
            "Enter an amount such as 12.50.",
            "Betrag wie 12.50 eingeben.",
            "Saisissez un montant comme 12.50.",
            "12.50 のように金額を入力してください。",
        ),
        Code::TooPrecise => lang.tr(
            "Too many decimals for this currency.",
            "Zu viele Nachkommastellen für diese Währung.",
            "Trop de décimales pour cette devise.",
            "この通貨には小数点以下の桁が多すぎます。",
        ),
        Code::AmountTooLarge => lang.tr(
            "This amount is too large.",
            "Dieser Betrag ist zu groß.",
            "Ce montant est trop élevé.",
            "金額が大きすぎます。",
        ),
        Code::UnsupportedCurrency | Code::UnknownCurrency => lang.tr(
            "The store does not sell in this currency.",
            "Der Shop verkauft nicht in dieser Währung.",
            "La boutique ne vend pas dans cette devise.",
            "この通貨は取り扱っていません。",
        ),
        Code::InvalidLocale | Code::UnknownLocale => lang.tr(
            "The store does not serve this language.",
            "Der Shop bietet diese Sprache nicht an.",
            "La boutique ne propose pas cette langue.",
            "この言語には対応していません。",
        ),
        Code::MissingDefaultContent => lang.tr(
            "The default language needs a title.",
            "Die Standardsprache braucht einen Titel.",
            "La langue par défaut doit avoir un titre.",
            "既定の言語にはタイトルが必要です。",
        ),
        Code::MissingVariant => lang.tr(
            "A product needs at least one variant.",
            "Ein Produkt braucht mindestens eine Variante.",
            "Un produit doit avoir au moins une variante.",
            "商品には少なくとも1つのバリエーションが必要です。",
        ),
        Code::TooManyVariants
        | Code::TooManyLocales
        | Code::TooManyAttributes
        | Code::TooManyImages => lang.tr(
            "Too many entries.",
            "Zu viele Einträge.",
            "Trop d’entrées.",
            "項目が多すぎます。",
        ),
        Code::InvalidUrl => lang.tr(
            "Give http(s) addresses, one per line.",
            "http(s)-Adressen angeben, eine pro Zeile.",
            "Indiquez des adresses http(s), une par ligne.",
            "http(s) のURLを1行に1つずつ入力してください。",
        ),
        Code::StockTooLarge | Code::WeightTooLarge => lang.tr(
            "This number is too large.",
            "Diese Zahl ist zu groß.",
            "Ce nombre est trop grand.",
            "数値が大きすぎます。",
        ),
        Code::InvalidField | Code::MissingField => lang.tr(
            "Enter a whole number.",
            "Eine ganze Zahl eingeben.",
            "Saisissez un nombre entier.",
            "整数を入力してください。",
        ),
        Code::InvalidDelta => lang.tr(
            "Enter a change other than zero.",
            "Eine Änderung ungleich null eingeben.",
            "Saisissez une variation non nulle.",
            "0以外の増減を入力してください。",
        ),
        Code::StockCommitted => lang.tr(
            "Stock cannot go below the units held for carts or sold.",
            "Der Bestand kann nicht unter die reservierten oder verkauften Einheiten fallen.",
            "Le stock ne peut pas descendre sous les unités réservées ou vendues.",
            "在庫はカートで確保中または販売済みの数を下回れません。",
        ),
        Code::UnknownSku => lang.tr(
            "None of your active products has this SKU.",
            "Keines Ihrer aktiven Produkte hat diese SKU.",
            "Aucun de vos produits actifs n’a ce SKU.",
            "有効な商品にこのSKUはありません。",
        ),
        Code::InvalidQuantity => lang.tr(
            "This quantity is out of range.",
            "Diese Menge ist außerhalb des Bereichs.",
            "Cette quantité est hors limites.",
            "数量が範囲外です。",
        ),
        Code::InvalidLimit => lang.tr(
            "The limit per shopper must be 1 to the sale's quantity.",
            "Das Limit pro Kunde muss zwischen 1 und der Verkaufsmenge liegen.",
            "La limite par client doit aller de 1 à la quantité de la vente.",
            "1人あたりの上限は1からセール数量までです。",
        ),
        Code::InvalidWindow => lang.tr(
            "The sale must end after it starts, in the future.",
            "Der Verkauf muss nach dem Start und in der Zukunft enden.",
            "La vente doit se terminer après son début, dans le futur.",
            "セールの終了は開始より後の、未来の日時にしてください。",
        ),
        Code::RateLimited | Code::ServiceUnavailable => lang.tr(
            "The store is busy; please try again in a moment.",
            "Der Shop ist ausgelastet; bitte gleich noch einmal versuchen.",
            "La boutique est occupée ; réessayez dans un instant.",
            "混み合っています。しばらくしてからお試しください。",
        ),
        _ => return None,
    };
    Some(words)
}

/// The confirmation after a change the console made (`?done=` of the page it returns to).
pub fn done(lang: Lang, what: &str) -> Option<&'static str> {
    let words = match what {
        "signed_in" => lang.tr(
            "Signed in.",
            "Angemeldet.",
            "Connecté.",
            "ログインしました。",
        ),
        "fulfilled" => lang.tr(
            "Marked as shipped.",
            "Als versandt markiert.",
            "Marquée comme expédiée.",
            "発送済みにしました。",
        ),
        "refunded" => lang.tr(
            "Refunded to the shopper's card.",
            "Auf die Karte des Kunden erstattet.",
            "Remboursée sur la carte du client.",
            "購入者のカードに返金しました。",
        ),
        "created" => lang.tr(
            "Product created.",
            "Produkt angelegt.",
            "Produit créé.",
            "商品を作成しました。",
        ),
        "saved" => lang.tr(
            "Changes saved.",
            "Änderungen gespeichert.",
            "Modifications enregistrées.",
            "変更を保存しました。",
        ),
        "archived" => lang.tr(
            "Archived: the product is off the storefront.",
            "Archiviert: das Produkt ist nicht mehr im Shop.",
            "Archivé : le produit n’est plus en boutique.",
            "アーカイブしました。ストアには表示されません。",
        ),
        "restored" => lang.tr(
            "Restored: the product is back on the storefront.",
            "Wiederhergestellt: das Produkt ist wieder im Shop.",
            "Restauré : le produit est de retour en boutique.",
            "復元しました。ストアに再表示されます。",
        ),
        "stock_set" => lang.tr(
            "Stock set.",
            "Bestand gesetzt.",
            "Stock défini.",
            "在庫を設定しました。",
        ),
        "stock_adjusted" => lang.tr(
            "Stock adjusted.",
            "Bestand angepasst.",
            "Stock ajusté.",
            "在庫を調整しました。",
        ),
        "scheduled" => lang.tr(
            "Flash sale scheduled.",
            "Blitzverkauf geplant.",
            "Vente flash programmée.",
            "フラッシュセールを登録しました。",
        ),
        _ => return None,
    };
    Some(words)
}

/// A sale's state in words.
pub fn sale_state(lang: Lang, state: SaleState) -> &'static str {
    match state {
        SaleState::Scheduled => lang.tr("Scheduled", "Geplant", "Programmée", "開始前"),
        SaleState::Open => lang.tr("Open", "Läuft", "En cours", "開催中"),
        SaleState::SoldOut => lang.tr("Sold out", "Ausverkauft", "Épuisée", "完売"),
        SaleState::Closed => lang.tr("Ended", "Beendet", "Terminée", "終了"),
    }
}
