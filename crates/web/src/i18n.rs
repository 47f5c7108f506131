//! Russian and English for every text a person sees. The language comes from
//! `?lang=`, then the `lang` cookie (set by the switcher), then `Accept-Language`;
//! Russian when nothing says otherwise.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ru,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ru" => Some(Lang::Ru),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::Ru => &RU,
            Lang::En => &EN,
        }
    }
    /// The first of ru/en in an Accept-Language header, by quality.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let lang = match tag.split('-').next().unwrap_or("") {
                "ru" => Lang::Ru,
                "en" => Lang::En,
                _ => continue,
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l)
    }
}

impl Lang {
    /// The reader's language: `?lang=`, else the `lang` cookie, else
    /// `Accept-Language`, else Russian.
    pub fn from_headers(headers: &axum::http::HeaderMap, uri: &axum::http::Uri) -> Lang {
        if let Some(q) = uri.query() {
            for pair in q.split('&') {
                if let Some(l) = pair.strip_prefix("lang=").and_then(Lang::parse) {
                    return l;
                }
            }
        }
        let jar = CookieJar::from_headers(headers);
        if let Some(l) = jar.get("lang").and_then(|c| Lang::parse(c.value())) {
            return l;
        }
        let accept = headers
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Lang::from_accept_language(accept).unwrap_or(Lang::Ru)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::from_headers(&parts.headers, &parts.uri))
    }
}

/// Every text on every page, in one language.
pub struct Texts {
    pub lang: &'static str,
    pub other_lang: &'static str,
    pub other_lang_name: &'static str,
    pub brand_tagline: &'static str,
    pub nav_shop: &'static str,
    pub nav_account: &'static str,
    pub nav_upload: &'static str,
    pub nav_console: &'static str,
    pub nav_backoffice: &'static str,
    pub login: &'static str,
    pub logout: &'static str,
    pub register: &'static str,
    pub email: &'static str,
    pub password: &'static str,
    pub name: &'static str,
    pub login_failed: &'static str,
    pub register_failed_taken: &'static str,
    pub register_failed_short: &'static str,
    pub register_failed_email: &'static str,
    pub register_failed_name: &'static str,
    pub register_failed_name_shape: &'static str,
    pub register_failed_long_password: &'static str,
    /// Too many failures: `{seconds}` is replaced by the wait.
    pub too_many_attempts: &'static str,
    pub have_account: &'static str,
    pub no_account: &'static str,
    pub home_title: &'static str,
    pub home_lead: &'static str,
    pub home_step1: &'static str,
    pub home_step2: &'static str,
    pub home_step3: &'static str,
    pub start: &'static str,
    pub my_orders: &'static str,
    pub no_orders: &'static str,
    pub new_order: &'static str,
    pub upload_title: &'static str,
    pub upload_lead: &'static str,
    pub model_file: &'static str,
    pub material: &'static str,
    pub upload_button: &'static str,
    pub uploading: &'static str,
    pub order: &'static str,
    pub status: &'static str,
    pub created: &'static str,
    pub price: &'static str,
    pub file: &'static str,
    pub customer: &'static str,
    pub pricing_wait: &'static str,
    pub quote: &'static str,
    pub weight: &'static str,
    pub volume: &'static str,
    pub area: &'static str,
    pub size: &'static str,
    pub triangles: &'static str,
    pub shells: &'static str,
    pub confirm: &'static str,
    pub cancel: &'static str,
    pub confirm_hint: &'static str,
    pub rejected_title: &'static str,
    pub timeline: &'static str,
    pub time: &'static str,
    /// The journey: how long the order stayed in a status, and its trace.
    pub time_in_status: &'static str,
    pub so_far: &'static str,
    pub trace: &'static str,
    pub actor: &'static str,
    pub tracking: &'static str,
    pub total: &'static str,
    pub line_metal: &'static str,
    pub line_casting: &'static str,
    pub line_finishing: &'static str,
    pub line_complexity: &'static str,
    pub line_minimum: &'static str,
    pub queue_title: &'static str,
    pub queue_lead: &'static str,
    pub queue_empty: &'static str,
    pub confirmed_ago: &'static str,
    pub take: &'static str,
    pub my_work: &'static str,
    pub my_work_empty: &'static str,
    pub mark_manufactured: &'static str,
    pub mark_packed: &'static str,
    pub mark_shipped: &'static str,
    pub tracking_placeholder: &'static str,
    pub operator: &'static str,
    pub taken_by: &'static str,
    pub taken_ok: &'static str,
    pub backoffice_title: &'static str,
    pub all_statuses: &'static str,
    pub filter: &'static str,
    pub next_page: &'static str,
    pub not_found: &'static str,
    pub page_not_found: &'static str,
    pub forbidden: &'static str,
    pub error_title: &'static str,
    pub back: &'static str,
    pub refresh: &'static str,
    pub err_missing_file: &'static str,
    pub err_empty_file: &'static str,
    pub err_not_a_model: &'static str,
    pub err_too_large: &'static str,
    pub err_unknown_material: &'static str,
    pub status_changed_ok: &'static str,
    pub err_tracking_required: &'static str,
    pub err_bad_tracking: &'static str,
    pub err_not_yours: &'static str,
    pub err_invalid_transition: &'static str,
    pub details: &'static str,
    pub taken_at: &'static str,
    pub deadline: &'static str,
    pub all_materials: &'static str,
    pub density: &'static str,
    pub per_gram: &'static str,
    pub preview: &'static str,
    pub nav_materials: &'static str,
    pub materials_title: &'static str,
    pub materials_lead: &'static str,
    pub code: &'static str,
    pub name_ru: &'static str,
    pub name_en: &'static str,
    pub price_per_gram_rub: &'static str,
    pub density_label: &'static str,
    pub active: &'static str,
    pub save: &'static str,
    pub add_material: &'static str,
    pub version: &'static str,
    pub changed_by: &'static str,
    pub versions: &'static str,
    pub saved_ok: &'static str,
    pub err_bad_price: &'static str,
    pub note: &'static str,
    pub actor_pricing: &'static str,
    pub mib: &'static str,
    pub mm: &'static str,
    pub g: &'static str,
}

impl Texts {
    /// The language these texts are in.
    pub fn language(&self) -> Lang {
        if self.lang == "ru" {
            Lang::Ru
        } else {
            Lang::En
        }
    }

    /// A status as a person reads it.
    pub fn status(&self, s: &str) -> &'static str {
        let ru = self.lang == "ru";
        match (s, ru) {
            ("PRICING", true) => "Расчёт цены",
            ("PRICING", false) => "Pricing",
            ("AWAITING_CONFIRMATION", true) => "Ждёт подтверждения",
            ("AWAITING_CONFIRMATION", false) => "Awaiting confirmation",
            ("REJECTED", true) => "Отклонён",
            ("REJECTED", false) => "Rejected",
            ("CONFIRMED", true) => "Подтверждён",
            ("CONFIRMED", false) => "Confirmed",
            ("CANCELLED", true) => "Отменён",
            ("CANCELLED", false) => "Cancelled",
            ("MANUFACTURING_STARTED", true) => "В производстве",
            ("MANUFACTURING_STARTED", false) => "In production",
            ("MANUFACTURED", true) => "Изготовлен",
            ("MANUFACTURED", false) => "Manufactured",
            ("PACKED", true) => "Упакован",
            ("PACKED", false) => "Packed",
            ("SHIPPED", true) => "Отправлен",
            ("SHIPPED", false) => "Shipped",
            (_, true) => "Неизвестно",
            (_, false) => "Unknown",
        }
    }
    /// A price line's code as a person reads it.
    pub fn line(&self, code: &str) -> &'static str {
        match code {
            "metal" => self.line_metal,
            "casting" => self.line_casting,
            "finishing" => self.line_finishing,
            "complexity" => self.line_complexity,
            _ => self.line_minimum,
        }
    }
}

pub static RU: Texts = Texts {
    lang: "ru",
    other_lang: "en",
    other_lang_name: "English",
    brand_tagline: "Украшения по вашей 3D-модели",
    nav_shop: "Магазин",
    nav_account: "Мои заказы",
    nav_upload: "Новый заказ",
    nav_console: "Очередь производства",
    nav_backoffice: "CRM",
    login: "Войти",
    logout: "Выйти",
    register: "Зарегистрироваться",
    email: "Эл. почта",
    password: "Пароль",
    name: "Имя",
    login_failed: "Неверная почта или пароль.",
    register_failed_taken: "Эта почта уже зарегистрирована. Войдите или укажите другую.",
    register_failed_short: "Пароль должен быть не короче 8 символов.",
    register_failed_email: "Укажите адрес эл. почты, например anna@example.com.",
    register_failed_name: "Укажите имя.",
    register_failed_name_shape: "Имя — одна строка не длиннее 100 символов, без управляющих символов.",
    register_failed_long_password: "Пароль не длиннее 1024 символов.",
    too_many_attempts: "Слишком много неудачных попыток. Повторите через {seconds} с.",
    have_account: "Уже есть аккаунт?",
    no_account: "Нет аккаунта?",
    home_title: "Ювелирное изделие по вашей модели",
    home_lead: "Загрузите 3D-модель кольца, подвески или браслета — цена будет через секунды, а за каждым шагом изготовления можно следить здесь же.",
    home_step1: "Загрузите модель (STL, OBJ, PLY, 3MF) и выберите металл",
    home_step2: "Получите цену с расшифровкой: вес металла, литьё, обработка",
    home_step3: "Подтвердите заказ и следите за статусом до отправки",
    start: "Начать",
    my_orders: "Мои заказы",
    no_orders: "Заказов пока нет. Загрузите модель — цена появится через несколько секунд.",
    new_order: "Новый заказ",
    upload_title: "Новый заказ",
    upload_lead: "Файл STL, OBJ, PLY или 3MF, размеры в миллиметрах. Модель должна быть замкнутой.",
    model_file: "Файл модели",
    material: "Металл",
    upload_button: "Загрузить и рассчитать",
    uploading: "Загрузка…",
    order: "Заказ",
    status: "Статус",
    created: "Создан",
    price: "Цена",
    file: "Файл",
    customer: "Клиент",
    pricing_wait: "Считаем цену по геометрии модели. Страница обновится сама.",
    quote: "Расчёт",
    weight: "Вес металла",
    volume: "Объём",
    area: "Площадь поверхности",
    size: "Габариты",
    triangles: "Треугольников",
    shells: "Оболочек",
    confirm: "Подтвердить заказ",
    cancel: "Отменить",
    confirm_hint: "После подтверждения заказ уйдёт в производство.",
    rejected_title: "Модель нельзя изготовить",
    timeline: "История",
    time: "Время",
    time_in_status: "Время в статусе",
    so_far: "пока идёт",
    trace: "Трасса",
    actor: "Кто",
    tracking: "Трек-номер",
    total: "Итого",
    line_metal: "Металл (с припуском на литьё)",
    line_casting: "Литьё",
    line_finishing: "Обработка поверхности",
    line_complexity: "Сложность",
    line_minimum: "Доплата до минимальной стоимости",
    queue_title: "Очередь производства",
    queue_lead: "Подтверждённые заказы, новые сверху",
    queue_empty: "Очередь пуста.",
    confirmed_ago: "Подтверждён",
    take: "Взять в работу",
    my_work: "Мои заказы в работе",
    my_work_empty: "У вас нет заказов в работе.",
    mark_manufactured: "Изготовлен",
    mark_packed: "Упакован",
    mark_shipped: "Отправить",
    tracking_placeholder: "трек-номер",
    operator: "Оператор",
    taken_by: "Заказ уже взял в работу",
    taken_ok: "Заказ взят в работу.",
    backoffice_title: "Заказы",
    all_statuses: "Все статусы",
    filter: "Показать",
    next_page: "Дальше →",
    not_found: "Заказ не найден.",
    page_not_found: "Такой страницы нет. Проверьте адрес или начните с главной.",
    forbidden: "Эта страница недоступна для вашей роли.",
    error_title: "Ошибка",
    back: "Назад",
    refresh: "Обновить",
    err_missing_file: "Выберите файл модели.",
    err_empty_file: "Файл пустой.",
    err_not_a_model: "Это не 3D-модель: ожидается STL, OBJ, PLY или 3MF.",
    err_too_large: "Файл больше допустимого размера",
    err_unknown_material: "Выберите металл из списка.",
    status_changed_ok: "Статус обновлён.",
    err_tracking_required: "Для отправки нужен трек-номер.",
    err_bad_tracking: "Трек-номер — до 64 букв, цифр, пробелов и знаков - / . без других символов.",
    err_not_yours: "Этот заказ в работе у другого оператора:",
    err_invalid_transition: "Действие недоступно: заказ сейчас в статусе",
    details: "Подробнее",
    taken_at: "Взят в работу",
    deadline: "Срок",
    all_materials: "Все металлы",
    density: "Плотность",
    per_gram: "за грамм",
    preview: "Вид модели",
    nav_materials: "Металлы",
    materials_title: "Каталог металлов",
    materials_lead: "Изменение создаёт новую версию; уже выданные расчёты не меняются.",
    code: "Код",
    name_ru: "Название (рус.)",
    name_en: "Название (англ.)",
    price_per_gram_rub: "Цена за грамм, ₽",
    density_label: "Плотность, г/см³",
    active: "Доступен",
    save: "Сохранить",
    add_material: "Новый металл",
    version: "Версия",
    changed_by: "Кто изменил",
    versions: "История версий",
    saved_ok: "Сохранено: новая версия",
    err_bad_price: "Цена за грамм: укажите сумму в рублях, например 7500,00.",
    note: "Примечание",
    actor_pricing: "Автоматический расчёт",
    mib: "МБ",
    mm: "мм",
    g: "г",
};

pub static EN: Texts = Texts {
    lang: "en",
    other_lang: "ru",
    other_lang_name: "Русский",
    brand_tagline: "Jewellery from your 3D model",
    nav_shop: "Shop",
    nav_account: "My orders",
    nav_upload: "New order",
    nav_console: "Production queue",
    nav_backoffice: "CRM",
    login: "Log in",
    logout: "Log out",
    register: "Register",
    email: "Email",
    password: "Password",
    name: "Name",
    login_failed: "Wrong email or password.",
    register_failed_taken: "This email is already registered. Log in or use another one.",
    register_failed_short: "The password must be at least 8 characters long.",
    register_failed_email: "Enter an email address, e.g. anna@example.com.",
    register_failed_name: "Enter your name.",
    register_failed_name_shape: "The name must be one line of at most 100 characters, without control characters.",
    register_failed_long_password: "The password must be at most 1024 characters long.",
    too_many_attempts: "Too many failed attempts. Try again in {seconds} s.",
    have_account: "Already have an account?",
    no_account: "No account yet?",
    home_title: "Jewellery made from your model",
    home_lead: "Upload a 3D model of a ring, pendant or bracelet — the price is ready in seconds, and you can follow every step of making it right here.",
    home_step1: "Upload a model (STL, OBJ, PLY, 3MF) and choose a metal",
    home_step2: "Get a price with its breakdown: metal weight, casting, finishing",
    home_step3: "Confirm the order and follow it until it ships",
    start: "Get started",
    my_orders: "My orders",
    no_orders: "No orders yet. Upload a model — the price appears in a few seconds.",
    new_order: "New order",
    upload_title: "New order",
    upload_lead: "An STL, OBJ, PLY or 3MF file, dimensions in millimetres. The model must be closed.",
    model_file: "Model file",
    material: "Metal",
    upload_button: "Upload and price",
    uploading: "Uploading…",
    order: "Order",
    status: "Status",
    created: "Created",
    price: "Price",
    file: "File",
    customer: "Customer",
    pricing_wait: "Pricing the model from its geometry. This page refreshes by itself.",
    quote: "Quote",
    weight: "Metal weight",
    volume: "Volume",
    area: "Surface area",
    size: "Size",
    triangles: "Triangles",
    shells: "Shells",
    confirm: "Confirm order",
    cancel: "Cancel",
    confirm_hint: "Once confirmed, the order goes to production.",
    rejected_title: "This model cannot be made",
    timeline: "History",
    time: "Time",
    time_in_status: "Time in status",
    so_far: "so far",
    trace: "Trace",
    actor: "By",
    tracking: "Tracking number",
    total: "Total",
    line_metal: "Metal (with casting allowance)",
    line_casting: "Casting",
    line_finishing: "Surface finishing",
    line_complexity: "Complexity",
    line_minimum: "Top-up to the minimum charge",
    queue_title: "Production queue",
    queue_lead: "Confirmed orders, newest first",
    queue_empty: "The queue is empty.",
    confirmed_ago: "Confirmed",
    take: "Take into work",
    my_work: "My orders in work",
    my_work_empty: "You have no orders in work.",
    mark_manufactured: "Manufactured",
    mark_packed: "Packed",
    mark_shipped: "Ship",
    tracking_placeholder: "tracking number",
    operator: "Operator",
    taken_by: "This order has already been taken by",
    taken_ok: "The order is yours.",
    backoffice_title: "Orders",
    all_statuses: "All statuses",
    filter: "Show",
    next_page: "Next →",
    not_found: "Order not found.",
    page_not_found: "There is no such page. Check the address or start from the home page.",
    forbidden: "This page is not available to your role.",
    error_title: "Error",
    back: "Back",
    refresh: "Refresh",
    err_missing_file: "Choose a model file.",
    err_empty_file: "The file is empty.",
    err_not_a_model: "This is not a 3D model: expected STL, OBJ, PLY or 3MF.",
    err_too_large: "The file is larger than the limit of",
    err_unknown_material: "Choose a metal from the list.",
    status_changed_ok: "Status updated.",
    err_tracking_required: "A tracking number is required to ship.",
    err_bad_tracking: "A tracking number is up to 64 letters, digits, spaces and - / . characters.",
    err_not_yours: "This order is being made by another operator:",
    err_invalid_transition: "Not possible: the order is now",
    details: "Details",
    taken_at: "Taken",
    deadline: "Deadline",
    all_materials: "All metals",
    density: "Density",
    per_gram: "per gram",
    preview: "Model preview",
    nav_materials: "Metals",
    materials_title: "Metals catalogue",
    materials_lead: "A change makes a new version; quotes already given never change.",
    code: "Code",
    name_ru: "Name (Russian)",
    name_en: "Name (English)",
    price_per_gram_rub: "Price per gram, ₽",
    density_label: "Density, g/cm³",
    active: "Available",
    save: "Save",
    add_material: "New metal",
    version: "Version",
    changed_by: "Changed by",
    versions: "Version history",
    saved_ok: "Saved: new version",
    err_bad_price: "Price per gram: enter an amount in roubles, e.g. 7500.00.",
    note: "Note",
    actor_pricing: "Automatic pricing",
    mib: "MB",
    mm: "mm",
    g: "g",
};

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn accept_language_picks_the_best_known_language() {
        assert_eq!(
            Lang::from_accept_language("en-US,en;q=0.9,ru;q=0.8"),
            Some(Lang::En)
        );
        assert_eq!(
            Lang::from_accept_language("de, ru;q=0.5, en;q=0.4"),
            Some(Lang::Ru)
        );
        assert_eq!(Lang::from_accept_language("de"), None);
    }
    #[test]
    fn every_status_has_a_name_in_both_languages() {
        for s in domain::OrderStatus::ALL {
            assert_ne!(RU.status(s.as_str()), "Неизвестно");
            assert_ne!(EN.status(s.as_str()), "Unknown");
        }
    }
}
