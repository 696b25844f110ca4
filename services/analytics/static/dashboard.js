/*
 * IIOE micro-certification — live analytics dashboard.
 *
 * Plain ES2020, no dependencies, no network access beyond the analytics
 * service itself. Every piece of data reaches the DOM through textContent or
 * setAttribute (never innerHTML), and charts are inline SVG built here.
 *
 * Data sources:
 *   GET /v1/analytics/summary     -> summary JSON
 *   GET /v1/analytics/timeseries  -> {"months": [...]}
 *   SSE /v1/analytics/stream      -> "summary" events carrying summary JSON
 */
(() => {
  "use strict";

  const API = {
    summary: "/v1/analytics/summary",
    timeseries: "/v1/analytics/timeseries",
    stream: "/v1/analytics/stream",
    cascade: "/v1/analytics/cascade",
    recognition: "/v1/analytics/recognition",
    practice: "/v1/analytics/practice",
    feedback: "/v1/analytics/feedback",
    report: "/v1/analytics/report",
  };
  const TIMESERIES_MIN_INTERVAL_MS = 2000;
  const RECONNECT_MIN_MS = 2000;
  const RECONNECT_MAX_MS = 30000;
  const LANG_STORAGE_KEY = "iioe-dashboard-lang";

  const KPI_KEYS = [
    "educators_registered",
    "institutions_active",
    "course_completions",
    "educators_completed_programme_courses",
    "certificates_issued",
    "certificates_revoked",
    "master_teachers",
    "training_sessions",
    "trainees_reached",
    "educators_integrating_ai",
    "courses_rated_highly",
  ];
  const CASCADE_COLS = ["sessions", "trainees", "trainees_completed", "trainees_certified", "second_generation_reach"];
  const CASCADE_CHART_ROWS = 8;
  const TABLE_NUM_COLS = [
    ["educators_registered", "col_registered"],
    ["course_completions", "col_completions"],
    ["educators_completed_programme_courses", "col_programme"],
    ["certificates_issued", "col_certificates"],
  ];
  const SERIES_KEYS = ["registrations", "course_completions", "programme_completions", "certificates_issued"];

  // ---------------------------------------------------------------- i18n --
  const I18N = {
    mn: {
      doc_title: "IIOE бичил гэрчилгээ — Шууд самбар",
      eyebrow: "ЮНЕСКО-ICHEI · IIOE",
      title: "Багш нарын бичил гэрчилгээ — Шууд самбар",
      subtitle: "Монгол Улсын их, дээд сургуулийн багш нарын хиймэл оюуны сургалтын хөтөлбөр",
      lang_group: "Хэл сонгох",
      last_updated: "Сүүлд шинэчилсэн",
      status_live: "Шууд холболттой",
      status_connecting: "Холбогдож байна…",
      status_reconnecting: "Дахин холбогдож байна…",
      status_offline: "Холболт тасарсан",
      kpis_title: "Гол үзүүлэлтүүд",
      educators_registered: "Бүртгүүлсэн багш",
      institutions_active: "Идэвхтэй байгууллага",
      course_completions: "Дүүргэсэн сургалт",
      educators_completed_programme_courses: "Хөтөлбөрийн бүх сургалтыг дүүргэсэн багш",
      certificates_issued: "Олгосон гэрчилгээ",
      certificates_revoked: "Хүчингүй болгосон гэрчилгээ",
      master_teachers: "Мастер багш",
      of_registered: "бүртгүүлсэн багшийн {pct}",
      funnel_title: "Оролцооны шат",
      funnel_note: "Хувь нь бүртгүүлсэн багшийн тооноос",
      funnel_registered: "Бүртгүүлсэн",
      funnel_started: "Сургалт эхэлсэн",
      funnel_completed: "Хөтөлбөр дүүргэсэн",
      funnel_certified: "Гэрчилгээ авсан",
      funnel_step: "өмнөх шатны {pct}",
      funnel_aria: "Оролцооны шат: {items}",
      series_label: "Үзүүлэлт",
      series_registrations: "Бүртгэл",
      series_course_completions: "Сургалт дүүргэлт",
      series_programme_completions: "Хөтөлбөр дүүргэлт",
      series_certificates_issued: "Олгосон гэрчилгээ",
      monthly_title_registrations: "Сар бүрийн бүртгэл",
      monthly_title_course_completions: "Сар бүрийн сургалт дүүргэлт",
      monthly_title_programme_completions: "Сар бүрийн хөтөлбөр дүүргэлт",
      monthly_title_certificates_issued: "Сар бүр олгосон гэрчилгээ",
      monthly_aria: "{series}, сараар: {items}",
      show_table: "Хүснэгтээр харах",
      col_month: "Сар",
      top_title: "Бүртгэлээр тэргүүлэх 10 байгууллага",
      top_aria: "Бүртгэлээр тэргүүлэх байгууллагууд: {items}",
      table_title: "Байгууллагаар",
      table_count: "{n} байгууллага",
      col_code: "Код",
      col_name: "Байгууллага",
      col_registered: "Бүртгүүлсэн",
      col_completions: "Дүүргэсэн сургалт",
      col_programme: "Хөтөлбөр дүүргэсэн",
      col_certificates: "Гэрчилгээ",
      no_name: "(нэр оруулаагүй)",
      no_data: "Мэдээлэл алга",
      loading: "Ачаалж байна…",
      load_error: "Мэдээлэл татахад алдаа гарлаа. Шууд холболтоор дахин оролдож байна.",
      month_long: "{year} оны {m}-р сар",
      month_short: "{m}-р сар",
      month_tiny: "{m}",
      training_sessions: "Мастер багшийн сургалт",
      trainees_reached: "Сургалтад хамрагдсан багш",
      educators_integrating_ai: "Хичээлдээ хиймэл оюун ашигладаг багш",
      courses_rated_highly: "Өндөр үнэлгээ (≥ 4)",
      of_ratings: "{n} үнэлгээнээс {pct}",
      range_label: "Хугацаа",
      range_all: "Бүх сар",
      range_12: "Сүүлийн 12 сар",
      range_6: "Сүүлийн 6 сар",
      cascade_title: "Мастер багшийн сүлжээний хамрах хүрээ",
      cascade_note: "Мастер багш → сургасан багш → тэдний дундаас мастер багш болсон хүмүүсийн сургасан багш (2-р үе)",
      cascade_masters: "Мастер багш",
      cascade_sessions: "Сургалт",
      cascade_trainees: "Хамрагдсан багш",
      cascade_certified: "Үүнээс гэрчилгээтэй",
      col_master: "Мастер багш",
      col_trainees_completed: "Хөтөлбөр дүүргэсэн",
      col_trainees_certified: "Гэрчилгээтэй",
      col_second_generation: "2-р үе",
      cascade_head_master: "Мастер багш",
      cascade_head_trainees: "Сургасан багш",
      cascade_head_second: "2-р үе",
      cascade_n_sessions: "{n} сургалт",
      cascade_n_trainees: "{n} багш",
      cascade_progress: "{c} дүүргэсэн · {k} гэрчилгээтэй",
      cascade_n_second: "{n} багш",
      cascade_empty: "Мастер багшийн сургалт бүртгэгдээгүй байна",
      cascade_more: "Бусад {n} мастер багш хүснэгтэд",
      cascade_aria: "Мастер багшийн сүлжээ: {items}",
      report_title: "Тайлан",
      report_note: "Сонгосон өдрийн төгсгөл дэх байдлаар (Улаанбаатарын цаг)",
      report_as_of: "Огноо",
      outcomes_title: "Үр дүн",
      transfers_title: "Кредит шилжүүлэлт",
      transfers_requests: "Хүсэлт",
      transfers_rate: "Зөвшөөрсөн хувь",
      transfers_credits: "Кредит",
      col_receiving: "Хүлээн авагч",
      practice_title: "Хичээлдээ хиймэл оюун ашиглаж буй нь",
      practice_share: "Хөтөлбөр дүүргэсэн багшаас",
      practice_reported: "Тайлагнасан багш",
      practice_share_short: "Хувь",
      feedback_title: "Сургалтын үнэлгээ",
      feedback_ratings: "Үнэлгээ",
      feedback_share: "4-өөс дээш",
      col_course: "Сургалт",
      col_language: "Хэл",
      footer: "ЮНЕСКО-ICHEI · Олон улсын онлайн боловсролын хүрээлэн (IIOE) · Монгол",
    },
    en: {
      doc_title: "IIOE Micro-certification — Live dashboard",
      eyebrow: "UNESCO-ICHEI · IIOE",
      title: "Teacher micro-certification — Live dashboard",
      subtitle: "AI courses programme for university teachers in Mongolia",
      lang_group: "Choose language",
      last_updated: "Last updated",
      status_live: "Live",
      status_connecting: "Connecting…",
      status_reconnecting: "Reconnecting…",
      status_offline: "Offline",
      kpis_title: "Headline figures",
      educators_registered: "Educators registered",
      institutions_active: "Institutions active",
      course_completions: "Course completions",
      educators_completed_programme_courses: "Educators who completed all programme courses",
      certificates_issued: "Certificates issued",
      certificates_revoked: "Certificates revoked",
      master_teachers: "Master teachers",
      of_registered: "{pct} of registered",
      funnel_title: "Participation funnel",
      funnel_note: "Percentages of registered educators",
      funnel_registered: "Registered",
      funnel_started: "Started a course",
      funnel_completed: "Completed programme",
      funnel_certified: "Certified",
      funnel_step: "{pct} of previous step",
      funnel_aria: "Participation funnel: {items}",
      series_label: "Measure",
      series_registrations: "Registrations",
      series_course_completions: "Course completions",
      series_programme_completions: "Programme completions",
      series_certificates_issued: "Certificates issued",
      monthly_title_registrations: "Registrations per month",
      monthly_title_course_completions: "Course completions per month",
      monthly_title_programme_completions: "Programme completions per month",
      monthly_title_certificates_issued: "Certificates issued per month",
      monthly_aria: "{series} by month: {items}",
      show_table: "View as table",
      col_month: "Month",
      top_title: "Top 10 institutions by registrations",
      top_aria: "Institutions with most registrations: {items}",
      table_title: "By institution",
      table_count: "{n} institutions",
      col_code: "Code",
      col_name: "Institution",
      col_registered: "Registered",
      col_completions: "Course completions",
      col_programme: "Completed programme",
      col_certificates: "Certificates",
      no_name: "(no name given)",
      no_data: "No data",
      loading: "Loading…",
      load_error: "Could not load data. Retrying over the live connection.",
      month_long: "{month} {year}",
      month_short: "{mon}",
      month_tiny: "{mon1}",
      training_sessions: "Training sessions",
      trainees_reached: "Trainees reached",
      educators_integrating_ai: "Educators integrating AI",
      courses_rated_highly: "Course ratings ≥ 4",
      of_ratings: "{pct} of {n} ratings",
      range_label: "Range",
      range_all: "All months",
      range_12: "Last 12 months",
      range_6: "Last 6 months",
      cascade_title: "Cascade reach",
      cascade_note: "Master teacher → educators they trained → educators trained by those who became master teachers (second generation)",
      cascade_masters: "Master teachers",
      cascade_sessions: "Sessions",
      cascade_trainees: "Trainees",
      cascade_certified: "Of them certified",
      col_master: "Master teacher",
      col_trainees_completed: "Completed programme",
      col_trainees_certified: "Certified",
      col_second_generation: "Second generation",
      cascade_head_master: "Master teacher",
      cascade_head_trainees: "Trained",
      cascade_head_second: "Second generation",
      cascade_n_sessions: "{n} sessions",
      cascade_n_trainees: "{n} trainees",
      cascade_progress: "{c} completed · {k} certified",
      cascade_n_second: "{n} reached",
      cascade_empty: "No training sessions yet",
      cascade_more: "{n} more master teachers in the table",
      cascade_aria: "Cascade: {items}",
      report_title: "Report",
      report_note: "As of the end of the chosen day (Ulaanbaatar time)",
      report_as_of: "As of",
      outcomes_title: "Outcomes",
      transfers_title: "Credit transfers",
      transfers_requests: "Requests",
      transfers_rate: "Accepted",
      transfers_credits: "Credits",
      col_receiving: "Receiving",
      practice_title: "AI in teaching practice",
      practice_share: "Of those who completed the programme",
      practice_reported: "Educators reporting",
      practice_share_short: "Share",
      feedback_title: "Course ratings",
      feedback_ratings: "Ratings",
      feedback_share: "Both ≥ 4",
      col_course: "Course",
      col_language: "Language",
      footer: "UNESCO-ICHEI · International Institute of Online Education (IIOE) · Mongolia",
    },
    ru: {
      doc_title: "Микросертификация IIOE — Панель в реальном времени",
      eyebrow: "ЮНЕСКО-ICHEI · IIOE",
      title: "Микросертификация преподавателей — Панель в реальном времени",
      subtitle: "Программа курсов по ИИ для преподавателей вузов Монголии",
      lang_group: "Выбор языка",
      last_updated: "Обновлено",
      status_live: "В реальном времени",
      status_connecting: "Подключение…",
      status_reconnecting: "Переподключение…",
      status_offline: "Нет соединения",
      kpis_title: "Основные показатели",
      educators_registered: "Зарегистрировано преподавателей",
      institutions_active: "Активных вузов",
      course_completions: "Пройдено курсов",
      educators_completed_programme_courses: "Прошли все курсы программы",
      certificates_issued: "Выдано сертификатов",
      certificates_revoked: "Отозвано сертификатов",
      master_teachers: "Мастер-преподаватели",
      of_registered: "{pct} от зарегистрированных",
      funnel_title: "Воронка участия",
      funnel_note: "Доли от числа зарегистрированных",
      funnel_registered: "Зарегистрированы",
      funnel_started: "Начали курс",
      funnel_completed: "Прошли программу",
      funnel_certified: "Получили сертификат",
      funnel_step: "{pct} от предыдущего шага",
      funnel_aria: "Воронка участия: {items}",
      series_label: "Показатель",
      series_registrations: "Регистрации",
      series_course_completions: "Пройденные курсы",
      series_programme_completions: "Пройденные программы",
      series_certificates_issued: "Выданные сертификаты",
      monthly_title_registrations: "Регистрации по месяцам",
      monthly_title_course_completions: "Пройденные курсы по месяцам",
      monthly_title_programme_completions: "Пройденные программы по месяцам",
      monthly_title_certificates_issued: "Выданные сертификаты по месяцам",
      monthly_aria: "{series} по месяцам: {items}",
      show_table: "Показать таблицу",
      col_month: "Месяц",
      top_title: "10 вузов с наибольшим числом регистраций",
      top_aria: "Вузы с наибольшим числом регистраций: {items}",
      table_title: "По вузам",
      table_count: "Вузов: {n}",
      col_code: "Код",
      col_name: "Вуз",
      col_registered: "Зарегистрировано",
      col_completions: "Пройдено курсов",
      col_programme: "Прошли программу",
      col_certificates: "Сертификаты",
      no_name: "(название не указано)",
      no_data: "Нет данных",
      loading: "Загрузка…",
      load_error: "Не удалось загрузить данные. Повторяем через живое соединение.",
      month_long: "{month} {year}",
      month_short: "{mon}",
      month_tiny: "{mon1}",
      training_sessions: "Обучающие занятия",
      trainees_reached: "Охвачено преподавателей",
      educators_integrating_ai: "Применяют ИИ в преподавании",
      courses_rated_highly: "Оценки курсов ≥ 4",
      of_ratings: "{pct} из {n} оценок",
      range_label: "Период",
      range_all: "Все месяцы",
      range_12: "Последние 12 месяцев",
      range_6: "Последние 6 месяцев",
      cascade_title: "Охват каскадного обучения",
      cascade_note: "Мастер-преподаватель → обученные им преподаватели → обученные теми из них, кто стал мастер-преподавателем (второе поколение)",
      cascade_masters: "Мастер-преподаватели",
      cascade_sessions: "Занятия",
      cascade_trainees: "Обучено",
      cascade_certified: "Из них с сертификатом",
      col_master: "Мастер-преподаватель",
      col_trainees_completed: "Прошли программу",
      col_trainees_certified: "С сертификатом",
      col_second_generation: "Второе поколение",
      cascade_head_master: "Мастер-преподаватель",
      cascade_head_trainees: "Обучено",
      cascade_head_second: "Второе поколение",
      cascade_n_sessions: "занятий: {n}",
      cascade_n_trainees: "обучено: {n}",
      cascade_progress: "прошли: {c} · с сертификатом: {k}",
      cascade_n_second: "охвачено: {n}",
      cascade_empty: "Занятий пока нет",
      cascade_more: "Ещё мастер-преподавателей в таблице: {n}",
      cascade_aria: "Каскад: {items}",
      report_title: "Отчёт",
      report_note: "На конец выбранного дня (время Улан-Батора)",
      report_as_of: "На дату",
      outcomes_title: "Результаты",
      transfers_title: "Перезачёт кредитов",
      transfers_requests: "Заявки",
      transfers_rate: "Одобрено",
      transfers_credits: "Кредиты",
      col_receiving: "Вуз",
      practice_title: "ИИ в преподавании",
      practice_share: "Из прошедших программу",
      practice_reported: "Отчитались",
      practice_share_short: "Доля",
      feedback_title: "Оценки курсов",
      feedback_ratings: "Оценки",
      feedback_share: "Обе ≥ 4",
      col_course: "Курс",
      col_language: "Язык",
      footer: "ЮНЕСКО-ICHEI · Международный институт онлайн-образования (IIOE) · Монголия",
    },
  };
  const EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December"];
  const RU_MONTHS = ["Январь", "Февраль", "Март", "Апрель", "Май", "Июнь", "Июль",
    "Август", "Сентябрь", "Октябрь", "Ноябрь", "Декабрь"];

  const state = {
    lang: "mn",
    summary: null,
    timeseries: null,
    series: "registrations",
    range: "all",
    cascade: null,
    recognition: null,
    practice: null,
    feedback: null,
    connection: "connecting",
    everLive: false,
    summarySeq: 0,
    loadError: false,
  };

  function t(key, vars) {
    const table = I18N[state.lang] || I18N.mn;
    let s = key in table ? table[key] : (I18N.en[key] ?? key);
    if (vars) {
      s = s.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
    }
    return s;
  }

  /** The institution's name in the chosen language (English where no translation is known). */
  function instName(r) {
    if (!r) return "";
    const localized = state.lang === "mn" ? r.name_mn : state.lang === "ru" ? r.name_ru : r.name;
    return localized ? String(localized) : r.name ? String(r.name) : "";
  }
  function instNameByCode(code) {
    const list = Array.isArray(state.summary?.by_institution) ? state.summary.by_institution : [];
    return instName(list.find((r) => r.institution === code));
  }

  // ------------------------------------------------------------ helpers --
  const $ = (sel, root = document) => root.querySelector(sel);

  function num(v) {
    const n = Number(v);
    return Number.isFinite(n) ? n : 0;
  }
  function fmtInt(v) {
    const n = Number(v);
    return Number.isFinite(n) ? String(Math.round(n)) : "—";
  }
  function fmtPct(fraction) {
    const n = Number(fraction);
    if (!Number.isFinite(n)) return "—";
    const p = n * 100;
    return (p >= 99.95 || p === 0 ? p.toFixed(0) : p.toFixed(1)) + "%";
  }
  function ratio(a, b) {
    return b > 0 ? a / b : 0;
  }
  function pad2(n) {
    return String(n).padStart(2, "0");
  }
  function fmtDateTime(iso) {
    const d = iso ? new Date(iso) : new Date();
    const v = Number.isNaN(d.getTime()) ? new Date() : d;
    return `${v.getFullYear()}-${pad2(v.getMonth() + 1)}-${pad2(v.getDate())} ` +
      `${pad2(v.getHours())}:${pad2(v.getMinutes())}:${pad2(v.getSeconds())}`;
  }
  function parseMonth(s) {
    const m = /^(\d{4})-(\d{1,2})/.exec(String(s ?? ""));
    return m ? { year: Number(m[1]), month: Number(m[2]) } : null;
  }
  function monthLabel(s, form) {
    const p = parseMonth(s);
    if (!p) return String(s ?? "");
    const name = (state.lang === "ru" ? RU_MONTHS : EN_MONTHS)[p.month - 1] || String(p.month);
    return t(form, { year: p.year, m: p.month, month: name, mon: name.slice(0, 3), mon1: name.slice(0, 1) });
  }
  function clearChildren(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  const SVGNS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVGNS, tag);
    if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function svgTitle(parent, text) {
    parent.appendChild(svg("title", null, text));
  }
  /** Shorten an SVG <text> (already in the document) so it fits maxWidth px. */
  function fitText(textNode, full, maxWidth) {
    textNode.textContent = full;
    let len;
    try {
      len = textNode.getComputedTextLength();
    } catch (_) {
      len = full.length * 7;
    }
    if (!(len > maxWidth) || maxWidth <= 0) return;
    let lo = 0;
    let hi = full.length;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      textNode.textContent = full.slice(0, mid).trimEnd() + "…";
      let w;
      try {
        w = textNode.getComputedTextLength();
      } catch (_) {
        w = mid * 7;
      }
      if (w <= maxWidth) lo = mid;
      else hi = mid - 1;
    }
    textNode.textContent = lo > 0 ? full.slice(0, lo).trimEnd() + "…" : "…";
  }
  function niceStep(max, targetTicks) {
    if (max <= 0) return 1;
    const raw = max / targetTicks;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const norm = raw / mag;
    const step = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
    return Math.max(1, step * mag);
  }
  function chartWidth(container, fallback) {
    const w = container.clientWidth;
    return Math.max(260, Math.floor(w > 0 ? w : fallback));
  }
  function emptyChart(container, key) {
    clearChildren(container);
    container.appendChild(el("p", { class: "chart-empty" }, t(key)));
  }

  // ------------------------------------------------------------- static --
  function applyStaticLabels() {
    document.documentElement.lang = state.lang;
    document.title = t("doc_title");
    for (const node of document.querySelectorAll("[data-i18n]")) {
      node.textContent = t(node.getAttribute("data-i18n"));
    }
    for (const node of document.querySelectorAll("[data-i18n-aria]")) {
      node.setAttribute("aria-label", t(node.getAttribute("data-i18n-aria")));
    }
    for (const btn of document.querySelectorAll(".lang-btn")) {
      btn.setAttribute("aria-pressed", btn.dataset.lang === state.lang ? "true" : "false");
    }
    renderStatus();
  }

  function setLang(lang) {
    if (!(lang in I18N) || lang === state.lang) return;
    state.lang = lang;
    try {
      window.localStorage.setItem(LANG_STORAGE_KEY, lang);
    } catch (_) { /* storage may be unavailable */ }
    applyStaticLabels();
    render();
  }

  // ------------------------------------------------------------- status --
  function setConnection(s) {
    state.connection = s;
    if (s === "live") state.everLive = true;
    renderStatus();
  }
  function renderStatus() {
    const node = $("#connection-status");
    if (!node) return;
    node.dataset.state = state.connection;
    let key = "status_offline";
    if (state.connection === "live") key = "status_live";
    else if (state.connection === "connecting") key = state.everLive ? "status_reconnecting" : "status_connecting";
    $("#connection-status-text").textContent = t(key);
  }

  // -------------------------------------------------------------- render --
  function render() {
    renderHeader();
    renderKpis();
    renderCharts();
    renderTable();
    renderMonthlyTable();
    renderCascadeTable();
    renderOutcomes();
    renderReportLinks();
    const n = Number(document.body.dataset.updates) || 0;
    document.body.dataset.updates = String(n + 1);
  }

  function renderCharts() {
    renderFunnel();
    renderMonthly();
    renderTop();
    renderCascade();
  }

  function renderHeader() {
    const node = $("#last-updated");
    const errNode = $("#load-error");
    errNode.hidden = !(state.loadError && !state.summary);
    errNode.textContent = t("load_error");
    if (!state.summary) return;
    const iso = state.summary.generated_at;
    node.textContent = fmtDateTime(iso);
    if (iso) node.setAttribute("datetime", String(iso));
  }

  function renderKpis() {
    const s = state.summary;
    for (const key of KPI_KEYS) {
      const node = document.getElementById("kpi-" + key);
      if (node) node.textContent = s ? fmtInt(s[key]) : "—";
    }
    const reg = s ? num(s.educators_registered) : 0;
    const subs = {
      "kpi-sub-programme": s ? num(s.educators_completed_programme_courses) : 0,
      "kpi-sub-certificates": s ? num(s.certificates_issued) : 0,
    };
    for (const [id, v] of Object.entries(subs)) {
      const node = document.getElementById(id);
      if (node) node.textContent = s && reg > 0 ? t("of_registered", { pct: fmtPct(ratio(v, reg)) }) : "";
    }
    const ratings = s ? num(s.course_ratings) : 0;
    const ratingsNode = document.getElementById("kpi-sub-ratings");
    if (ratingsNode) {
      ratingsNode.textContent = ratings > 0
        ? t("of_ratings", { pct: fmtPct(ratio(num(s.courses_rated_highly), ratings)), n: fmtInt(ratings) }) : "";
    }
  }

  function renderFunnel() {
    const container = $("#chart-funnel");
    const s = state.summary;
    if (!s) return emptyChart(container, "loading");
    const f = s.funnel || {};
    const rates = f.rates || {};
    const reg = num(f.registered ?? s.educators_registered);
    const steps = [
      { key: "registered", value: reg, rate: 1 },
      { key: "started", value: num(f.started), rate: rates.started },
      { key: "completed", value: num(f.completed), rate: rates.completed },
      { key: "certified", value: num(f.certified), rate: rates.certified },
    ].map((st) => ({
      ...st,
      rate: Number.isFinite(Number(st.rate)) && st.rate !== null ? Number(st.rate) : ratio(st.value, reg),
    }));

    const width = chartWidth(container, 560);
    const rowH = 68;
    const top = 4;
    const height = top + steps.length * rowH;
    const root = svg("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "svg-chart funnel",
      "aria-label": t("funnel_aria", {
        items: steps.map((st) => `${t("funnel_" + st.key)} ${fmtInt(st.value)} (${fmtPct(st.rate)})`).join("; "),
      }),
    });
    clearChildren(container);
    container.appendChild(root);

    steps.forEach((st, i) => {
      const y = top + i * rowH;
      const g = svg("g", { class: `funnel-step step-${i}` });
      root.appendChild(g);
      svgTitle(g, `${t("funnel_" + st.key)}: ${fmtInt(st.value)} (${fmtPct(st.rate)})`);
      const valueText = svg("text", { x: width, y: y + 16, "text-anchor": "end", class: "funnel-value" });
      valueText.appendChild(svg("tspan", { class: "funnel-count" }, fmtInt(st.value)));
      valueText.appendChild(svg("tspan", { class: "funnel-pct", dx: 8 }, fmtPct(st.rate)));
      g.appendChild(valueText);
      let valueW = 110;
      try {
        valueW = valueText.getComputedTextLength() + 12;
      } catch (_) { /* keep estimate */ }
      const label = svg("text", { x: 0, y: y + 16, class: "funnel-label" });
      g.appendChild(label);
      fitText(label, t("funnel_" + st.key), width - valueW);

      const barY = y + 24;
      const barH = 18;
      g.appendChild(svg("rect", { x: 0, y: barY, width, height: barH, rx: 3, class: "bar-track" }));
      const w = Math.max(0, Math.min(1, st.rate)) * width;
      if (w > 0) {
        g.appendChild(svg("rect", { x: 0, y: barY, width: Math.max(2, w), height: barH, rx: 3, class: `bar funnel-bar-${i}` }));
      }
      if (i > 0) {
        const prev = steps[i - 1].value;
        g.appendChild(svg("text", { x: 0, y: barY + barH + 14, class: "funnel-step-note" },
          t("funnel_step", { pct: fmtPct(ratio(st.value, prev)) })));
      }
    });
  }

  function renderMonthly() {
    const container = $("#chart-monthly");
    const key = state.series;
    $("#monthly-title").textContent = t("monthly_title_" + key);
    if (!state.timeseries) return emptyChart(container, "loading");
    const months = monthsInRange();
    if (months.length === 0) return emptyChart(container, "no_data");

    const values = months.map((m) => num(m[key]));
    const maxV = Math.max(0, ...values);
    const step = niceStep(maxV, 4);
    const yMax = Math.max(step, Math.ceil(maxV / step) * step);

    const width = chartWidth(container, 560);
    const height = width < 480 ? 220 : 260;
    const m = { top: 18, right: 6, bottom: 40, left: 40 };
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const slot = plotW / months.length;
    const barW = Math.max(2, Math.min(48, slot * 0.7));

    const root = svg("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "svg-chart monthly",
      "aria-label": t("monthly_aria", {
        series: t("series_" + key),
        items: months.map((mo, i) => `${monthLabel(mo.month, "month_long")} ${fmtInt(values[i])}`).join("; "),
      }),
    });
    clearChildren(container);
    container.appendChild(root);

    // grid + y axis
    const grid = svg("g", { class: "grid", "aria-hidden": "true" });
    root.appendChild(grid);
    for (let v = 0; v <= yMax + 1e-9; v += step) {
      const y = m.top + plotH - (v / yMax) * plotH;
      grid.appendChild(svg("line", { x1: m.left, x2: width - m.right, y1: y, y2: y, class: v === 0 ? "axis-line" : "grid-line" }));
      grid.appendChild(svg("text", { x: m.left - 6, y: y + 4, "text-anchor": "end", class: "axis-label" }, fmtInt(v)));
    }

    // x labels: pick a form and a stride that fit
    const form = slot >= 46 ? "month_short" : slot >= 30 && state.lang === "en" ? "month_short" : "month_tiny";
    const labelMin = form === "month_tiny" ? 16 : state.lang === "mn" ? 46 : 30;
    const stride = Math.max(1, Math.ceil(labelMin / slot));
    const showValues = slot >= 26;

    const bars = svg("g", { class: "bars" });
    root.appendChild(bars);
    months.forEach((mo, i) => {
      const v = values[i];
      const cx = m.left + slot * i + slot / 2;
      const h = yMax > 0 ? (v / yMax) * plotH : 0;
      const g = svg("g", { class: "bar-group" });
      bars.appendChild(g);
      svgTitle(g, `${monthLabel(mo.month, "month_long")}: ${fmtInt(v)}`);
      // invisible full-height hit area for the tooltip
      g.appendChild(svg("rect", { x: cx - slot / 2, y: m.top, width: slot, height: plotH, class: "hit" }));
      if (h > 0) {
        g.appendChild(svg("rect", { x: cx - barW / 2, y: m.top + plotH - h, width: barW, height: h, rx: 2, class: "bar" }));
      }
      if (showValues && v > 0) {
        g.appendChild(svg("text", { x: cx, y: m.top + plotH - h - 5, "text-anchor": "middle", class: "bar-value" }, fmtInt(v)));
      }
      const p = parseMonth(mo.month);
      if (i % stride === 0) {
        g.appendChild(svg("text", { x: cx, y: height - m.bottom + 16, "text-anchor": "middle", class: "axis-label" },
          monthLabel(mo.month, form)));
      }
      if (p && (i === 0 || p.month === 1)) {
        g.appendChild(svg("text", {
          x: Math.max(m.left, cx - slot / 2 + 1), y: height - m.bottom + 32, "text-anchor": "start", class: "axis-year",
        }, String(p.year)));
      }
    });
  }

  /** The months to chart: the chosen measure's series ends at its latest month with data (never
   *  running empty to today); a range counts back from there. */
  function monthsInRange() {
    const months = Array.isArray(state.timeseries?.months) ? state.timeseries.months.slice() : [];
    months.sort((a, b) => String(a.month).localeCompare(String(b.month)));
    while (months.length && !(num(months[months.length - 1][state.series]) > 0)) months.pop();
    const n = Number(state.range);
    return Number.isFinite(n) && n > 0 ? months.slice(-n) : months;
  }

  function sortedInstitutions() {
    const list = Array.isArray(state.summary?.by_institution) ? state.summary.by_institution.slice() : [];
    list.sort((a, b) =>
      num(b.educators_registered) - num(a.educators_registered) ||
      String(a.institution).localeCompare(String(b.institution)));
    return list;
  }

  function renderTop() {
    const container = $("#chart-top");
    if (!state.summary) return emptyChart(container, "loading");
    const list = sortedInstitutions().slice(0, 10);
    if (list.length === 0) return emptyChart(container, "no_data");

    const width = chartWidth(container, 900);
    const stacked = width < 560;
    const rowH = stacked ? 40 : 30;
    const barH = stacked ? 14 : 18;
    const labelW = stacked ? 0 : Math.min(340, Math.round(width * 0.38));
    const valueW = 48;
    const barX = stacked ? 0 : labelW + 10;
    const barMax = width - barX - valueW;
    const height = list.length * rowH + 4;
    const maxV = Math.max(1, ...list.map((r) => num(r.educators_registered)));

    const root = svg("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "svg-chart top",
      "aria-label": t("top_aria", {
        items: list.map((r) => `${String(r.institution).toUpperCase()} ${fmtInt(r.educators_registered)}`).join("; "),
      }),
    });
    clearChildren(container);
    container.appendChild(root);

    list.forEach((r, i) => {
      const v = num(r.educators_registered);
      const code = String(r.institution ?? "").toUpperCase();
      const name = instName(r);
      const full = name ? `${code} · ${name}` : code;
      const y = i * rowH + 2;
      const g = svg("g", { class: "top-row", "data-institution": String(r.institution ?? "") });
      root.appendChild(g);
      svgTitle(g, `${full}: ${fmtInt(v)}`);

      const barY = stacked ? y + 20 : y + (rowH - barH) / 2;
      const label = svg("text", {
        x: stacked ? 0 : labelW, y: stacked ? y + 13 : barY + barH / 2 + 4,
        "text-anchor": stacked ? "start" : "end", class: "top-label",
      });
      g.appendChild(label);
      fitText(label, full, stacked ? width - 4 : labelW);

      const w = (v / maxV) * barMax;
      g.appendChild(svg("rect", { x: barX, y: barY, width: Math.max(barMax, 0), height: barH, rx: 3, class: "bar-track" }));
      if (w > 0) g.appendChild(svg("rect", { x: barX, y: barY, width: Math.max(2, w), height: barH, rx: 3, class: "bar" }));
      g.appendChild(svg("text", { x: barX + w + 6, y: barY + barH / 2 + 4, class: "bar-value strong" }, fmtInt(v)));
    });
  }

  function renderTable() {
    const table = $("#institutions-table");
    const tbody = table.tBodies[0];
    const list = sortedInstitutions();
    $("#table-count").textContent = state.summary ? t("table_count", { n: list.length }) : "";
    const frag = document.createDocumentFragment();
    if (!state.summary || list.length === 0) {
      const tr = el("tr", { class: "empty-row", role: "row" });
      tr.appendChild(el("td", { colspan: 6, role: "cell" }, t(state.summary ? "no_data" : "loading")));
      frag.appendChild(tr);
    }
    for (const r of list) {
      // Explicit roles keep table semantics when the phone layout restyles rows as cards.
      const tr = el("tr", { "data-institution": String(r.institution ?? ""), role: "row" });
      tr.appendChild(el("th", { scope: "row", role: "rowheader", class: "code" }, String(r.institution ?? "")));
      const name = instName(r);
      const nameCell = el("td", { class: "name", role: "cell" }, name || t("no_name"));
      if (!name) nameCell.classList.add("muted");
      tr.appendChild(nameCell);
      for (const [k, labelKey] of TABLE_NUM_COLS) {
        tr.appendChild(el("td", { class: "num", "data-col": k, "data-label": t(labelKey), role: "cell" }, fmtInt(r[k])));
      }
      frag.appendChild(tr);
    }
    clearChildren(tbody);
    tbody.appendChild(frag);
  }

  function sortedMasters() {
    const list = Array.isArray(state.cascade?.master_teachers) ? state.cascade.master_teachers.slice() : [];
    list.sort((a, b) => num(b.trainees) - num(a.trainees) || num(b.sessions) - num(a.sessions) ||
      String(a.educator_id).localeCompare(String(b.educator_id)));
    return list;
  }

  function renderCascadeTotals() {
    const c = state.cascade;
    const totals = c?.totals || {};
    const values = {
      "cascade-total-masters": c ? (c.master_teachers || []).length : null,
      "cascade-total-sessions": c ? totals.sessions : null,
      "cascade-total-trainees": c ? totals.trainees : null,
      "cascade-total-certified": c ? totals.trainees_certified : null,
    };
    for (const [id, v] of Object.entries(values)) {
      const node = document.getElementById(id);
      if (node) node.textContent = v === null ? "—" : fmtInt(v);
    }
  }

  /** A tree read left to right: master teacher → the educators they trained → the second generation. */
  function renderCascade() {
    renderCascadeTotals();
    const container = $("#chart-cascade");
    if (!container) return;
    if (!state.cascade) return emptyChart(container, "loading");
    const all = sortedMasters();
    const list = all.slice(0, CASCADE_CHART_ROWS);
    if (list.length === 0) return emptyChart(container, "cascade_empty");

    const width = chartWidth(container, 900);
    // wide: three columns side by side; narrow (phones): the master teacher on a line of its own,
    // the trainees and the second generation below it, indented
    const narrow = width < 620;
    const head = narrow ? 0 : 22;
    const rowH = narrow ? 104 : 50;
    const gap = narrow ? 14 : 40;
    const indent = narrow ? 18 : 0;
    const colW = narrow ? Math.floor((width - indent - gap) / 2) : Math.floor((width - 2 * gap) / 3);
    const boxH = narrow ? 42 : rowH - 10;
    const more = all.length - list.length;
    const height = head + list.length * rowH + (more > 0 ? 22 : 0);
    const maxT = Math.max(1, ...list.map((r) => num(r.trainees)));
    const maxS = Math.max(1, ...list.map((r) => num(r.second_generation_reach)));

    const root = svg("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "svg-chart cascade",
      "aria-label": t("cascade_aria", {
        items: list.map((r) => `${r.educator_id}: ${t("cascade_n_trainees", { n: fmtInt(r.trainees) })}, ` +
          `${t("cascade_head_second")} ${fmtInt(r.second_generation_reach)}`).join("; "),
      }),
    });
    clearChildren(container);
    container.appendChild(root);
    if (!narrow) {
      ["cascade_head_master", "cascade_head_trainees", "cascade_head_second"].forEach((key, i) => {
        const label = svg("text", { x: i * (colW + gap), y: 14, class: "cascade-head" });
        root.appendChild(label);
        fitText(label, t(key), colW);
      });
    }

    list.forEach((r, i) => {
      const y = head + i * rowH;
      // box positions: [x, y, width] of the master teacher, the trainees, the second generation
      const boxes = narrow
        ? [[0, y, width], [indent, y + boxH + 8, colW], [indent + colW + gap, y + boxH + 8, colW]]
        : [[0, y, colW], [colW + gap, y, colW], [2 * (colW + gap), y, colW]];
      const g = svg("g", {
        class: "cascade-row", "data-educator": String(r.educator_id ?? ""),
        "data-trainees": num(r.trainees), "data-second": num(r.second_generation_reach),
      });
      root.appendChild(g);
      const inst = instNameByCode(r.institution) || String(r.institution ?? "");
      svgTitle(g, `${r.educator_id} (${inst}): ${t("cascade_n_sessions", { n: fmtInt(r.sessions) })}, ` +
        `${t("cascade_n_trainees", { n: fmtInt(r.trainees) })}, ` +
        `${t("cascade_progress", { c: fmtInt(r.trainees_completed), k: fmtInt(r.trainees_certified) })}, ` +
        `${t("cascade_head_second")}: ${fmtInt(r.second_generation_reach)}`);

      // links first, so the boxes sit on top
      const link = (d, weight, cls) => {
        g.appendChild(svg("path", { d, class: `cascade-link ${cls}`, "stroke-width": weight }));
      };
      const [m, tr, sg] = boxes;
      const mid = (b) => b[1] + boxH / 2;
      if (num(r.trainees) > 0) {
        const w = 2 + 10 * num(r.trainees) / maxT;
        link(narrow ? `M${indent / 2},${m[1] + boxH} L${indent / 2},${mid(tr)} L${tr[0]},${mid(tr)}`
          : `M${m[0] + colW},${mid(m)} L${tr[0]},${mid(tr)}`, w, "first");
      }
      if (num(r.second_generation_reach) > 0) {
        link(`M${tr[0] + tr[2]},${mid(tr)} L${sg[0]},${mid(sg)}`,
          2 + 10 * num(r.second_generation_reach) / maxS, "second");
      }

      const node = ([x, top, w], cls, main, sub) => {
        g.appendChild(svg("rect", { x, y: top, width: w, height: boxH, rx: 6, class: `cascade-node ${cls}` }));
        const mainText = svg("text", { x: x + 8, y: top + 16, class: "cascade-main" });
        g.appendChild(mainText);
        fitText(mainText, main, w - 16);
        const subText = svg("text", { x: x + 8, y: top + 32, class: "cascade-sub" });
        g.appendChild(subText);
        fitText(subText, sub, w - 16);
      };
      node(m, "master", String(r.educator_id ?? ""), `${String(r.institution ?? "").toUpperCase()} · ` +
        t("cascade_n_sessions", { n: fmtInt(r.sessions) }));
      node(tr, "first", t("cascade_n_trainees", { n: fmtInt(r.trainees) }),
        t("cascade_progress", { c: fmtInt(r.trainees_completed), k: fmtInt(r.trainees_certified) }));
      node(sg, "second", t("cascade_n_second", { n: fmtInt(r.second_generation_reach) }),
        narrow ? t("cascade_head_second") : "");
    });
    if (more > 0) {
      root.appendChild(svg("text", { x: 0, y: height - 6, class: "cascade-sub" }, t("cascade_more", { n: more })));
    }
  }

  function renderCascadeTable() {
    const table = $("#cascade-table");
    if (!table) return;
    const tbody = table.tBodies[0];
    const frag = document.createDocumentFragment();
    for (const r of sortedMasters()) {
      const tr = el("tr", { "data-educator": String(r.educator_id ?? "") });
      tr.appendChild(el("th", { scope: "row", class: "code" }, String(r.educator_id ?? "")));
      tr.appendChild(el("td", { class: "name" }, instNameByCode(r.institution) || String(r.institution ?? "")));
      for (const k of CASCADE_COLS) tr.appendChild(el("td", { class: "num", "data-col": k }, fmtInt(r[k])));
      frag.appendChild(tr);
    }
    clearChildren(tbody);
    tbody.appendChild(frag);
  }

  function setText(id, text) {
    const node = document.getElementById(id);
    if (node) node.textContent = text;
  }
  function fillTable(id, rows, textCols = 1) {
    const table = document.getElementById(id);
    if (!table) return;
    const frag = document.createDocumentFragment();
    for (const cells of rows) {
      const tr = el("tr");
      cells.forEach((c, i) => tr.appendChild(el("td", { class: i < textCols ? "name" : "num" }, c)));
      frag.appendChild(tr);
    }
    clearChildren(table.tBodies[0]);
    table.tBodies[0].appendChild(frag);
  }
  function fmtNum(v) {
    const n = Number(v);
    return Number.isFinite(n) ? String(Math.round(n * 10) / 10) : "—";
  }

  /** Credit transfers, AI in teaching practice, course ratings (aggregates only). */
  function renderOutcomes() {
    const rec = state.recognition;
    const tr = rec?.transfers;
    setText("transfers-requests", tr ? fmtInt(tr.requests) : "—");
    setText("transfers-rate", tr ? fmtPct(tr.acceptance_rate) : "—");
    setText("transfers-credits", tr ? fmtNum(tr.credits) : "—");
    const receiving = Array.isArray(rec?.by_receiving_institution) ? rec.by_receiving_institution.slice() : [];
    receiving.sort((a, b) => num(b.requests) - num(a.requests) || String(a.institution).localeCompare(String(b.institution)));
    fillTable("transfers-table", receiving.slice(0, 6).map((r) => [
      String(r.institution).toUpperCase(), fmtInt(r.requests), fmtPct(r.acceptance_rate), fmtNum(r.credits)]));

    const pr = state.practice;
    setText("practice-share", pr ? fmtPct(pr.overall?.share_of_completed) : "—");
    setText("practice-reported", pr ? fmtInt(pr.overall?.reported) : "—");
    const practiceRows = Array.isArray(pr?.by_institution) ? pr.by_institution.slice() : [];
    practiceRows.sort((a, b) => num(b.completed_programme) - num(a.completed_programme) ||
      String(a.institution).localeCompare(String(b.institution)));
    fillTable("practice-table", practiceRows.slice(0, 6).map((r) => [
      instNameByCode(r.institution) || String(r.institution), fmtInt(r.completed_programme),
      fmtPct(r.share_of_completed)]));

    const fb = state.feedback;
    setText("feedback-ratings", fb ? fmtInt(fb.ratings) : "—");
    setText("feedback-share", fb ? fmtPct(fb.share_highly) : "—");
    const courses = Array.isArray(fb?.by_course) ? fb.by_course : [];
    fillTable("feedback-table", courses.map((c) => [
      `${c.course_id} · ${String(c.language).toUpperCase()}`, fmtInt(c.ratings), fmtPct(c.share_highly)]));
  }

  function renderReportLinks() {
    const input = $("#report-as-of");
    if (!input) return;
    const asOf = /^\d{4}-\d{2}-\d{2}$/.test(input.value) ? input.value : "";
    for (const link of document.querySelectorAll(".report-link")) {
      const format = link.dataset.format;
      if (asOf) {
        link.setAttribute("href", `${API.report}?as_of=${asOf}&format=${format}&lang=${state.lang}`);
        link.setAttribute("download", `iioe-report-${asOf}.${format}`);
        link.removeAttribute("aria-disabled");
      } else {
        link.removeAttribute("href");
        link.setAttribute("aria-disabled", "true");
      }
    }
  }

  function renderMonthlyTable() {
    const tbody = $("#monthly-table").tBodies[0];
    const months = Array.isArray(state.timeseries?.months) ? state.timeseries.months.slice() : [];
    months.sort((a, b) => String(a.month).localeCompare(String(b.month)));
    const frag = document.createDocumentFragment();
    for (const mo of months) {
      const tr = el("tr", { "data-month": String(mo.month ?? "") });
      tr.appendChild(el("th", { scope: "row" }, monthLabel(mo.month, "month_long")));
      for (const k of SERIES_KEYS) tr.appendChild(el("td", { class: "num" }, fmtInt(mo[k])));
      frag.appendChild(tr);
    }
    clearChildren(tbody);
    tbody.appendChild(frag);
  }

  // ---------------------------------------------------------------- data --
  async function getJSON(url) {
    const res = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return res.json();
  }

  function acceptSummary(data) {
    if (!data || typeof data !== "object") return;
    state.summary = data;
    state.summarySeq += 1;
    state.loadError = false;
    render();
  }

  async function loadSummary() {
    const seq = state.summarySeq;
    try {
      const data = await getJSON(API.summary);
      // A stream event that arrived meanwhile is newer: keep it.
      if (seq === state.summarySeq) acceptSummary(data);
    } catch (err) {
      console.warn("summary fetch failed", err);
      state.loadError = true;
      renderHeader();
    }
  }

  // Timeseries: at most one request every TIMESERIES_MIN_INTERVAL_MS, with a
  // trailing request so the last summary event is always followed by a fetch.
  const ts = { lastStart: -Infinity, timer: null, inFlight: false, pending: false, seq: 0 };

  function requestTimeseries() {
    if (ts.timer !== null) return;
    if (ts.inFlight) {
      ts.pending = true;
      return;
    }
    const wait = ts.lastStart + TIMESERIES_MIN_INTERVAL_MS - performance.now();
    if (wait <= 0) {
      fetchTimeseries();
    } else {
      ts.timer = window.setTimeout(() => {
        ts.timer = null;
        fetchTimeseries();
      }, wait);
    }
  }

  async function fetchTimeseries() {
    ts.lastStart = performance.now();
    ts.inFlight = true;
    const seq = ++ts.seq;
    try {
      const [data, cascade, recognition, practice, feedback] = await Promise.all(
        [API.timeseries, API.cascade, API.recognition, API.practice, API.feedback].map(getJSON));
      if (seq === ts.seq && data && typeof data === "object") {
        state.timeseries = data;
        state.cascade = cascade;
        state.recognition = recognition;
        state.practice = practice;
        state.feedback = feedback;
        render();
      }
    } catch (err) {
      console.warn("timeseries fetch failed", err);
    } finally {
      ts.inFlight = false;
      if (ts.pending) {
        ts.pending = false;
        requestTimeseries();
      }
    }
  }

  // --------------------------------------------------------------- stream --
  let source = null;
  let reconnectDelay = RECONNECT_MIN_MS;
  let reconnectTimer = null;

  function connectStream() {
    if (typeof window.EventSource !== "function") {
      setConnection("offline");
      return;
    }
    if (source) source.close();
    setConnection("connecting");
    const es = new EventSource(API.stream);
    source = es;
    es.onopen = () => {
      if (source !== es) return;
      reconnectDelay = RECONNECT_MIN_MS;
      setConnection("live");
    };
    es.addEventListener("summary", (ev) => {
      if (source !== es) return;
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch (err) {
        console.warn("bad summary event", err);
        return;
      }
      if (state.connection !== "live") setConnection("live");
      acceptSummary(data);
      requestTimeseries();
    });
    es.onerror = () => {
      if (source !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. HTTP error): retry ourselves with backoff.
        setConnection("offline");
        scheduleReconnect();
      } else {
        setConnection("connecting");
      }
    };
  }

  function scheduleReconnect() {
    if (reconnectTimer !== null) return;
    const delay = reconnectDelay;
    reconnectDelay = Math.min(RECONNECT_MAX_MS, reconnectDelay * 2);
    reconnectTimer = window.setTimeout(() => {
      reconnectTimer = null;
      connectStream();
      // Refresh what we may have missed while disconnected.
      loadSummary();
      requestTimeseries();
    }, delay);
  }

  // ----------------------------------------------------------------- init --
  function initialLang() {
    const fromUrl = new URLSearchParams(window.location.search).get("lang");
    if (fromUrl && fromUrl in I18N) return fromUrl;
    try {
      const stored = window.localStorage.getItem(LANG_STORAGE_KEY);
      if (stored && stored in I18N) return stored;
    } catch (_) { /* ignore */ }
    return "mn";
  }

  function init() {
    state.lang = initialLang();
    for (const btn of document.querySelectorAll(".lang-btn")) {
      btn.addEventListener("click", () => setLang(btn.dataset.lang));
    }
    const select = $("#series-select");
    select.value = state.series;
    select.addEventListener("change", () => {
      if (SERIES_KEYS.includes(select.value)) {
        state.series = select.value;
        renderMonthly();
      }
    });
    const range = $("#range-select");
    range.value = state.range;
    range.addEventListener("change", () => {
      state.range = range.value;
      renderMonthly();
    });
    const asOf = $("#report-as-of");
    const today = new Date();
    asOf.value = `${today.getFullYear()}-${pad2(today.getMonth() + 1)}-${pad2(today.getDate())}`;
    asOf.addEventListener("change", renderReportLinks);
    let resizeTimer = null;
    let lastWidth = window.innerWidth;
    window.addEventListener("resize", () => {
      if (window.innerWidth === lastWidth) return;
      lastWidth = window.innerWidth;
      window.clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(renderCharts, 150);
    });
    window.addEventListener("beforeunload", () => source && source.close());

    applyStaticLabels();
    render();
    connectStream();
    loadSummary();
    requestTimeseries();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
