// Japanese and English UI text for the dev phone and the demo site, and the
// language choice: `?lang=` forces it, else the last choice kept in
// localStorage, else the browser's language.

const STORAGE_KEY = 'ivr-auth.lang';
const LANGS = ['ja', 'en'];

const MESSAGES = {
  en: {
    'lang.label': 'Language',
    'common.skip': 'Skip to main content',
    'common.new_tab': '(opens in a new tab)',

    'status.pending': 'Waiting',
    'status.calling': 'Calling',
    'status.in_progress': 'On the call',
    'status.texted': 'Code sent by text message',
    'status.verified': 'Verified',
    'status.failed': 'Failed',
    'status.expired': 'Expired',
    'status.canceled': 'Canceled',

    'reason.wrong_code': 'The code entered on the phone was wrong too many times.',
    'reason.no_input': 'No code was entered on the phone.',
    'reason.no_answer': 'The call was not answered.',
    'reason.busy': 'The line was busy.',
    'reason.call_failed': 'The call could not be connected.',
    'reason.rejected': 'The call was declined.',
    'reason.attestation': 'The caller ID of the call could not be verified by the phone network.',
    'reason.not_placed': 'The call could not be placed in time.',
    'reason.delivery_failed': 'The text message could not be delivered.',

    // Dev phone
    'phone.title': 'Dev phone — ivr-auth',
    'phone.brand': 'ivr-auth',
    'phone.heading': 'Dev phone',
    'phone.tagline': 'A simulated telephone for trying ivr-auth without a phone line.',
    'phone.sound': 'Sound',
    'phone.sound_label': 'Sound (voice prompts and key tones)',
    'phone.live': 'Live',
    'phone.connecting': 'Connecting…',
    'phone.reconnecting': 'Reconnecting…',
    'phone.handset': 'Handset',
    'phone.idle': 'No call',
    'phone.idle_hint': 'Calls placed by ivr-auth ring here. Start one from the demo site, or call the inbound number below.',
    'phone.incoming': 'Incoming call',
    'phone.outgoing': 'Calling the inbound number',
    'phone.ended': 'Call ended',
    'phone.from': 'From',
    'phone.to': 'To',
    'phone.withheld': 'Withheld (anonymous)',
    'phone.answer': 'Answer',
    'phone.decline': 'Decline',
    'phone.hangup': 'Hang up',
    'phone.keypad': 'Keypad',
    'phone.keys_hint': 'Keyboard: 0–9, * and # press keys, Enter answers, Escape hangs up.',
    'phone.typed': 'Keys pressed',
    'phone.awaiting': 'Listening for keys',
    'phone.now_playing': 'Now playing',
    'phone.nothing_playing': 'Nothing is playing.',
    'phone.key_star': 'Star',
    'phone.key_hash': 'Pound',
    'phone.state.ringing': 'Ringing',
    'phone.state.in-progress': 'Connected',
    'phone.state.completed': 'Ended',
    'phone.state.busy': 'Declined',
    'phone.state.no-answer': 'Not answered',
    'phone.state.failed': 'Failed',
    'phone.state.canceled': 'Canceled',
    'phone.announce.ringing': 'Incoming call from {from}.',
    'phone.announce.in-progress': 'Call connected.',
    'phone.announce.ended': 'Call ended: {state}.',
    'phone.dial.heading': 'Call the inbound number',
    'phone.dial.number': 'Inbound number',
    'phone.dial.disabled': 'Inbound calls are off (IVR_AUTH_INBOUND_NUMBER is not set).',
    'phone.dial.from': 'Your phone number (caller ID)',
    'phone.dial.from_hint': 'Enter the number you registered on the demo site.',
    'phone.dial.from_registered': 'The number registered on the demo site ({number}).',
    'phone.dial.from_other': 'The demo site registered {number}; a call from another number is not matched to it.',
    'phone.dial.withhold': 'Withhold my caller ID',
    'phone.dial.call': 'Call',
    'phone.dial.failed': 'The call could not be started: {message}',
    'phone.calls.heading': 'Calls',
    'phone.calls.empty': 'No calls yet.',
    'phone.calls.inbound': 'Inbound',
    'phone.calls.outbound': 'Outbound',
    'phone.timeline.heading': 'Call timeline',
    'phone.timeline.empty': 'Select a call to see what happened on it.',
    'phone.request.heading': 'Verification request',
    'phone.request.none': 'This call is not linked to a verification request.',
    'phone.request.no_call': 'No call selected.',
    'phone.request.status': 'Status',
    'phone.request.attempts': 'Wrong codes',
    'phone.request.reason': 'Reason',
    'phone.request.expires': 'Expires',
    'phone.request.locale': 'Voice language',
    'phone.action_failed': 'Not possible now: {message}',
    'kind.ringing': 'Ringing',
    'kind.answered': 'Answered',
    'kind.declined': 'Declined',
    'kind.say': 'Prompt',
    'kind.play': 'Audio prompt',
    'kind.pause': 'Pause',
    'kind.gather': 'Waiting for keys',
    'kind.key': 'Key',
    'kind.digits': 'Code sent',
    'kind.redirect': 'Redirect',
    'kind.hangup': 'Hung up',
    'kind.status': 'Call status',
    'kind.error': 'Error',
    'kind.pause_seconds': '{seconds} s of silence',
    'kind.gather_digits': 'up to {digits} keys, {seconds} s between keys',
    'kind.gather_timeout': '{seconds} s between keys',
    // Call statuses the provider reports (kept as Twilio names them).
    'callstatus.queued': 'queued',
    'callstatus.initiated': 'initiated',
    'callstatus.ringing': 'ringing',
    'callstatus.answered': 'answered',
    'callstatus.in-progress': 'in-progress',
    'callstatus.completed': 'completed',
    'callstatus.busy': 'busy',
    'callstatus.no-answer': 'no-answer',
    'callstatus.failed': 'failed',
    'callstatus.canceled': 'canceled',

    // Demo site
    'demo.title': 'Reset your password — Example Bank (demo)',
    'demo.brand': 'Example Bank',
    'demo.badge': 'Demo',
    'demo.devphone': 'Open the dev phone',
    'demo.heading': 'Reset your password',
    'demo.intro': 'To protect your account, we confirm that you hold your registered phone before issuing a temporary password.',
    'demo.user_id': 'User ID',
    'demo.phone_number': 'Registered phone number',
    'demo.phone_hint': 'For example 090-1234-5678 or +819012345678.',
    'demo.mode': 'How would you like to verify?',
    'demo.mode.outbound': 'We call you and you type the code shown here',
    'demo.mode.outbound_hint': 'Answer our call and enter the code this page shows on your phone’s keypad.',
    'demo.mode.voice_otp': 'We call you and read the code aloud',
    'demo.mode.voice_otp_hint': 'Answer our call, listen to the code, and enter it on this page.',
    'demo.mode.sms': 'We send a text message',
    'demo.mode.sms_hint': 'We send the code by SMS to your registered mobile phone. Enter it on this page.',
    'demo.mode.inbound': 'You call us',
    'demo.mode.inbound_hint': 'Call our number from your registered phone and enter the code.',
    'demo.fallback': 'If I don’t answer, send a text message instead',
    'demo.fallback_hint': 'Mobile phones only. You then enter the code from the message on this page.',
    'demo.voice_hint': 'Voice guidance and text messages are in the language of this page.',
    'demo.submit': 'Continue',
    'demo.submitting': 'Sending…',
    'demo.error.generic': 'Something went wrong. Please try again. ({message})',
    'demo.error.network': 'The server could not be reached. Please try again.',
    'demo.required.user_id': 'Enter your user ID.',
    'demo.required.phone_number': 'Enter your phone number.',
    'demo.invalid.user_id': 'Enter a user ID of up to 64 characters.',
    'demo.invalid.phone_number': 'Enter a valid phone number, for example 090-1234-5678.',
    'demo.invalid.mode': 'This way of verifying is not available now. Please choose another one.',
    'demo.invalid.phone_number_sms': 'Enter a valid mobile phone number. Text messages cannot be sent to a landline.',
    'demo.invalid.fallback': 'A text message cannot be sent instead for this choice.',
    'demo.invalid.locale': 'This language is not available for the voice guidance.',
    'demo.error.rate_limited': 'Too many attempts for this phone number. Please wait a few minutes and try again.',
    'demo.tip': 'No telephone line at hand?',
    'demo.tip_link': 'Use the dev phone',
    'demo.code_label': 'Your verification code',
    'demo.enter_heading': 'Enter your verification code',
    'demo.outbound.step1': 'We are calling {phone} now.',
    'demo.outbound.step2': 'Answer the call and listen to the guidance.',
    'demo.outbound.step3': 'Enter the code above on your phone’s keypad.',
    'demo.voice_otp.step1': 'We are calling {phone} now.',
    'demo.voice_otp.step2': 'Answer the call. We read the code aloud twice; press 1 to hear it again.',
    'demo.voice_otp.step3': 'Enter the code you heard below, then select Verify.',
    'demo.sms.step1': 'We are sending a text message to {phone}.',
    'demo.sms.step2': 'Open the message and find the verification code.',
    'demo.sms.step3': 'Enter the code below, then select Verify.',
    'demo.fallback.step1': 'We could not reach you by phone, so we sent a text message to {phone}.',
    'demo.fallback.step2': 'Open the message and find the verification code.',
    'demo.fallback.step3': 'Enter the code from the message below, then select Verify.',
    'demo.fallback.new_code': 'The message has a new code: the one shown before no longer works.',
    'demo.check.label': 'Verification code',
    'demo.check.hint_call': 'The digits read aloud on the call.',
    'demo.check.hint_sms': 'The digits in the text message.',
    'demo.check.required': 'Enter the verification code.',
    'demo.check.submit': 'Verify',
    'demo.check.checking': 'Checking…',
    'demo.check.malformed': 'Enter the code in numbers (4 to 10 digits).',
    'demo.check.wrong': 'That code is not correct. You have {left} attempts left.',
    'demo.check.wrong_one': 'That code is not correct. You have 1 attempt left.',
    'demo.check.ended': 'This verification has already ended.',
    'demo.inbound.call_label': 'Call this number',
    'demo.inbound.step1': 'From your registered phone {phone}, call the number above.',
    'demo.inbound.step2': 'Show your caller ID. In Japan, dial 186 before the number if it is hidden.',
    'demo.inbound.step3': 'Enter the code above on your phone’s keypad.',
    'demo.expires_in': 'The code expires in {time}.',
    'demo.expired_now': 'The code has expired.',
    'demo.attempts': 'Wrong codes: {attempts} of {max}',
    'demo.live.pending_outbound': 'Preparing the call…',
    'demo.live.pending_inbound': 'Waiting for your call…',
    'demo.live.calling': 'Your phone is ringing. Please answer it.',
    'demo.live.in_progress': 'You are on the call. Enter the code when asked.',
    'demo.live.otp_in_progress': 'You are on the call. Enter the code you hear in the box above.',
    'demo.live.otp_ended': 'The call has ended. Enter the code you heard in the box above.',
    'demo.live.sms_sending': 'Sending the text message…',
    'demo.live.sms_sent': 'We have sent the text message. Enter the code from it in the box above.',
    'demo.live.fallback_sending': 'You did not answer, so we are sending the code by text message…',
    'demo.live.fallback_sent': 'You did not answer, so we sent the code by text message. Enter the code from it in the box above.',
    'demo.live.offline': 'The connection to the server is lost. Trying again…',
    'demo.cancel': 'Cancel',
    'demo.verified.heading': 'You are verified',
    'demo.verified.body': 'Sign in with this temporary password. You will be asked to choose a new one.',
    'demo.verified.password': 'Temporary password',
    'demo.copy': 'Copy',
    'demo.copied': 'Copied',
    'demo.failed.heading': 'We could not verify you',
    'demo.reason.wrong_code_page': 'The code entered on this page was wrong too many times.',
    'demo.expired.heading': 'The code has expired',
    'demo.expired.body': 'The verification was not completed in time.',
    'demo.canceled.heading': 'Verification canceled',
    'demo.canceled.body': 'You canceled this verification.',
    'demo.retry': 'Try again',
    'demo.start_over': 'Start over',
    'demo.footer': 'This is a demonstration site for ivr-auth. No real bank is involved.',

    // Dev phone: text messages (messages.js)
    'messages.heading': 'Text messages',
    'messages.empty': 'No text messages yet. Messages that ivr-auth sends appear here.',
    'messages.from': 'From',
    'messages.to': 'To',
    'messages.announce': 'New text message from {from} to {to}: {body}',
    'messages.status.queued': 'Sending',
    'messages.status.sent': 'Sent',
    'messages.status.delivered': 'Delivered',
    'messages.status.undelivered': 'Not delivered',
    'messages.status.failed': 'Failed',
  },
  ja: {
    'lang.label': '言語',
    'common.skip': '本文へ移動',
    'common.new_tab': '（新しいタブで開きます）',

    'status.pending': '受付済み',
    'status.calling': '発信中',
    'status.in_progress': '通話中',
    'status.texted': 'SMSで送信済み',
    'status.verified': '認証済み',
    'status.failed': '認証失敗',
    'status.expired': '期限切れ',
    'status.canceled': '取り消し',

    'reason.wrong_code': '電話で入力された認証番号が、規定の回数を超えて誤っていました。',
    'reason.no_input': '電話で認証番号が入力されませんでした。',
    'reason.no_answer': 'お電話に応答がありませんでした。',
    'reason.busy': '話し中でした。',
    'reason.call_failed': 'お電話をおつなぎできませんでした。',
    'reason.rejected': 'お電話が拒否されました。',
    'reason.attestation': '発信者番号を電話網で確認できませんでした。',
    'reason.not_placed': '時間内にお電話をおかけできませんでした。',
    'reason.delivery_failed': 'SMSをお届けできませんでした。',

    'phone.title': '開発用電話 — ivr-auth',
    'phone.brand': 'ivr-auth',
    'phone.heading': '開発用電話',
    'phone.tagline': '電話回線なしで ivr-auth を試すための、ブラウザ上の電話機です。',
    'phone.sound': '音声',
    'phone.sound_label': '音声（ガイダンスとキー操作音）',
    'phone.live': '接続済み',
    'phone.connecting': '接続しています…',
    'phone.reconnecting': '再接続しています…',
    'phone.handset': '電話機',
    'phone.idle': '通話はありません',
    'phone.idle_hint': 'ivr-auth からの電話はここに着信します。デモサイトから始めるか、下の受付番号に電話をかけてください。',
    'phone.incoming': '着信',
    'phone.outgoing': '受付番号に発信中',
    'phone.ended': '通話は終了しました',
    'phone.from': '発信元',
    'phone.to': '宛先',
    'phone.withheld': '非通知',
    'phone.answer': '応答',
    'phone.decline': '拒否',
    'phone.hangup': '終話',
    'phone.keypad': 'ダイヤルキー',
    'phone.keys_hint': 'キーボード: 0〜9、*、# でキー入力、Enter で応答、Esc で終話します。',
    'phone.typed': '押したキー',
    'phone.awaiting': 'キー入力を待っています',
    'phone.now_playing': '再生中のガイダンス',
    'phone.nothing_playing': '再生中のガイダンスはありません。',
    'phone.key_star': 'アスタリスク',
    'phone.key_hash': 'シャープ',
    'phone.state.ringing': '呼び出し中',
    'phone.state.in-progress': '通話中',
    'phone.state.completed': '終了',
    'phone.state.busy': '拒否',
    'phone.state.no-answer': '応答なし',
    'phone.state.failed': '失敗',
    'phone.state.canceled': '取り消し',
    'phone.announce.ringing': '{from} から着信があります。',
    'phone.announce.in-progress': '通話がつながりました。',
    'phone.announce.ended': '通話が終わりました: {state}',
    'phone.dial.heading': '受付番号に電話をかける',
    'phone.dial.number': '受付番号',
    'phone.dial.disabled': '着信は無効です（IVR_AUTH_INBOUND_NUMBER が未設定です）。',
    'phone.dial.from': 'あなたの電話番号（発信者番号）',
    'phone.dial.from_hint': 'デモサイトで登録した電話番号を入力してください。',
    'phone.dial.from_registered': 'デモサイトで登録した番号（{number}）です。',
    'phone.dial.from_other': 'デモサイトで登録した番号は {number} です。ほかの番号からの電話は照合されません。',
    'phone.dial.withhold': '発信者番号を通知しない（非通知）',
    'phone.dial.call': '発信',
    'phone.dial.failed': '発信できませんでした: {message}',
    'phone.calls.heading': '通話一覧',
    'phone.calls.empty': 'まだ通話はありません。',
    'phone.calls.inbound': '受付番号へ',
    'phone.calls.outbound': 'ivr-auth から',
    'phone.timeline.heading': '通話の経過',
    'phone.timeline.empty': '通話を選ぶと、その経過が表示されます。',
    'phone.request.heading': '認証リクエスト',
    'phone.request.none': 'この通話は認証リクエストに結び付いていません。',
    'phone.request.no_call': '通話が選ばれていません。',
    'phone.request.status': '状態',
    'phone.request.attempts': '誤入力',
    'phone.request.reason': '理由',
    'phone.request.expires': '有効期限',
    'phone.request.locale': 'ガイダンスの言語',
    'phone.action_failed': '今は操作できません: {message}',
    'kind.ringing': '呼び出し',
    'kind.answered': '応答',
    'kind.declined': '拒否',
    'kind.say': 'ガイダンス',
    'kind.play': '音声ファイル',
    'kind.pause': '無音',
    'kind.gather': 'キー入力待ち',
    'kind.key': 'キー',
    'kind.digits': '番号を送信',
    'kind.redirect': '転送',
    'kind.hangup': '切断',
    'kind.status': '通話状態',
    'kind.error': 'エラー',
    'kind.pause_seconds': '{seconds} 秒の無音',
    'kind.gather_digits': '最大 {digits} 桁、キーの間隔 {seconds} 秒まで',
    'kind.gather_timeout': 'キーの間隔 {seconds} 秒まで',
    'callstatus.queued': '発信待ち',
    'callstatus.initiated': '発信開始',
    'callstatus.ringing': '呼び出し中',
    'callstatus.answered': '応答',
    'callstatus.in-progress': '通話中',
    'callstatus.completed': '終了',
    'callstatus.busy': '話し中',
    'callstatus.no-answer': '応答なし',
    'callstatus.failed': '失敗',
    'callstatus.canceled': '取り消し',

    'demo.title': 'パスワードの再設定 — サンプル銀行（デモ）',
    'demo.brand': 'サンプル銀行',
    'demo.badge': 'デモ',
    'demo.devphone': '開発用電話を開く',
    'demo.heading': 'パスワードの再設定',
    'demo.intro': 'お客さまの口座を守るため、仮パスワードを発行する前に、ご登録の電話番号をお持ちであることを確認します。',
    'demo.user_id': 'ユーザーID',
    'demo.phone_number': 'ご登録の電話番号',
    'demo.phone_hint': '例: 090-1234-5678 または +819012345678',
    'demo.mode': '確認の方法',
    'demo.mode.outbound': 'お電話します（画面の番号をダイヤルで入力）',
    'demo.mode.outbound_hint': 'お電話に出て、この画面に表示する認証番号をダイヤルボタンで入力してください。',
    'demo.mode.voice_otp': 'お電話で認証番号をお読み上げします',
    'demo.mode.voice_otp_hint': 'お電話に出て認証番号をお聞きになり、この画面に入力してください。',
    'demo.mode.sms': 'SMSで認証番号をお送りします',
    'demo.mode.sms_hint': 'ご登録の携帯電話にSMSで認証番号をお送りします。この画面に入力してください。',
    'demo.mode.inbound': 'お客さまからお電話ください',
    'demo.mode.inbound_hint': 'ご登録の電話から当行の番号に発信し、認証番号を入力してください。',
    'demo.fallback': '電話に出られなかった場合はSMSでお送りする',
    'demo.fallback_hint': '携帯電話の場合のみご利用いただけます。SMSに記載の認証番号を、この画面に入力してください。',
    'demo.voice_hint': '音声ガイダンスとSMSは、このページの言語でお届けします。',
    'demo.submit': '次へ',
    'demo.submitting': '送信しています…',
    'demo.error.generic': 'エラーが発生しました。もう一度お試しください。（{message}）',
    'demo.error.network': 'サーバーに接続できませんでした。もう一度お試しください。',
    'demo.required.user_id': 'ユーザーIDを入力してください。',
    'demo.required.phone_number': '電話番号を入力してください。',
    'demo.invalid.user_id': 'ユーザーIDは64文字以内で入力してください。',
    'demo.invalid.phone_number': '正しい電話番号を入力してください（例: 090-1234-5678）。',
    'demo.invalid.mode': 'この確認方法は現在ご利用いただけません。別の方法をお選びください。',
    'demo.invalid.phone_number_sms': '正しい携帯電話の番号を入力してください。固定電話にはSMSをお送りできません。',
    'demo.invalid.fallback': 'この確認方法では、SMSでお送りすることはできません。',
    'demo.invalid.locale': 'この言語の音声ガイダンスはご利用いただけません。',
    'demo.error.rate_limited': 'この電話番号での試行が多すぎます。数分おいてから、もう一度お試しください。',
    'demo.tip': 'お手元に電話回線がない場合は',
    'demo.tip_link': '開発用電話をお使いください',
    'demo.code_label': 'あなたの認証番号',
    'demo.enter_heading': '認証番号の入力',
    'demo.outbound.step1': 'ただいま {phone} にお電話しています。',
    'demo.outbound.step2': 'お電話に出て、音声ガイダンスをお聞きください。',
    'demo.outbound.step3': '上の認証番号をダイヤルボタンで入力してください。',
    'demo.voice_otp.step1': 'ただいま {phone} にお電話しています。',
    'demo.voice_otp.step2': 'お電話に出ると、認証番号を2回お読み上げします。もう一度お聞きになる場合は 1 を押してください。',
    'demo.voice_otp.step3': 'お聞きになった認証番号を下の欄に入力し、「確認する」を押してください。',
    'demo.sms.step1': '{phone} 宛てにSMSをお送りしています。',
    'demo.sms.step2': '届いたSMSに記載の認証番号をご確認ください。',
    'demo.sms.step3': 'その認証番号を下の欄に入力し、「確認する」を押してください。',
    'demo.fallback.step1': 'お電話がつながらなかったため、{phone} 宛てにSMSをお送りしました。',
    'demo.fallback.step2': '届いたSMSに記載の認証番号をご確認ください。',
    'demo.fallback.step3': 'その認証番号を下の欄に入力し、「確認する」を押してください。',
    'demo.fallback.new_code': 'SMSには新しい認証番号を記載しています。先ほど表示した番号はご利用いただけません。',
    'demo.check.label': '認証番号',
    'demo.check.hint_call': 'お電話でお読み上げした数字です。',
    'demo.check.hint_sms': 'SMSに記載の数字です。',
    'demo.check.required': '認証番号を入力してください。',
    'demo.check.submit': '確認する',
    'demo.check.checking': '確認しています…',
    'demo.check.malformed': '認証番号は4〜10桁の数字で入力してください。',
    'demo.check.wrong': '認証番号が正しくありません。あと{left}回入力できます。',
    'demo.check.wrong_one': '認証番号が正しくありません。あと1回入力できます。',
    'demo.check.ended': 'この認証はすでに終了しています。',
    'demo.inbound.call_label': 'こちらにお電話ください',
    'demo.inbound.step1': 'ご登録の電話 {phone} から、上の番号にお電話ください。',
    'demo.inbound.step2': '発信者番号を通知してください。非通知設定の場合は、番号の前に 186 を付けてください。',
    'demo.inbound.step3': '上の認証番号をダイヤルボタンで入力してください。',
    'demo.expires_in': '認証番号の有効期限まで、あと {time} です。',
    'demo.expired_now': '認証番号の有効期限が過ぎました。',
    'demo.attempts': '誤入力: {attempts} / {max} 回',
    'demo.live.pending_outbound': 'お電話の準備をしています…',
    'demo.live.pending_inbound': 'お電話をお待ちしています…',
    'demo.live.calling': 'お電話を鳴らしています。応答してください。',
    'demo.live.in_progress': '通話中です。案内に従って認証番号を入力してください。',
    'demo.live.otp_in_progress': '通話中です。お聞きになった認証番号を上の欄に入力してください。',
    'demo.live.otp_ended': '通話が終了しました。お聞きになった認証番号を上の欄に入力してください。',
    'demo.live.sms_sending': 'SMSを送信しています…',
    'demo.live.sms_sent': 'SMSをお送りしました。記載の認証番号を上の欄に入力してください。',
    'demo.live.fallback_sending': 'お電話がつながらなかったため、SMSで認証番号をお送りしています…',
    'demo.live.fallback_sent': 'お電話がつながらなかったため、SMSで認証番号をお送りしました。記載の認証番号を上の欄に入力してください。',
    'demo.live.offline': 'サーバーとの接続が切れました。再接続しています…',
    'demo.cancel': '取り消す',
    'demo.verified.heading': '認証が完了しました',
    'demo.verified.body': 'この仮パスワードでログインしてください。ログイン後、新しいパスワードを設定していただきます。',
    'demo.verified.password': '仮パスワード',
    'demo.copy': 'コピー',
    'demo.copied': 'コピーしました',
    'demo.failed.heading': '認証できませんでした',
    'demo.reason.wrong_code_page': 'この画面で入力された認証番号が、規定の回数を超えて誤っていました。',
    'demo.expired.heading': '認証番号の有効期限が過ぎました',
    'demo.expired.body': '時間内に認証が完了しませんでした。',
    'demo.canceled.heading': '認証を取り消しました',
    'demo.canceled.body': 'この認証はお客さまの操作で取り消されました。',
    'demo.retry': 'もう一度試す',
    'demo.start_over': 'はじめからやり直す',
    'demo.footer': 'これは ivr-auth のデモサイトです。実在の銀行とは関係ありません。',

    'messages.heading': 'SMS（受信メッセージ）',
    'messages.empty': 'まだSMSはありません。ivr-auth が送信したSMSはここに表示されます。',
    'messages.from': '送信元',
    'messages.to': '宛先',
    'messages.announce': '{to} 宛てに {from} からSMSが届きました: {body}',
    'messages.status.queued': '送信中',
    'messages.status.sent': '送信済み',
    'messages.status.delivered': '配信済み',
    'messages.status.undelivered': '未配信',
    'messages.status.failed': '失敗',
  },
};

let current = pickInitial();
const listeners = new Set();

function normalize(value) {
  if (!value) return null;
  const short = String(value).toLowerCase().slice(0, 2);
  return LANGS.includes(short) ? short : null;
}

function storedLang() {
  try {
    return normalize(localStorage.getItem(STORAGE_KEY));
  } catch {
    // Storage can be blocked (private mode, sandboxed frames): fall through.
    return null;
  }
}

function pickInitial() {
  const forced = normalize(new URLSearchParams(location.search).get('lang'));
  if (forced) return forced;
  const stored = storedLang();
  if (stored) return stored;
  for (const candidate of navigator.languages || [navigator.language]) {
    const lang = normalize(candidate);
    if (lang) return lang;
  }
  return 'en';
}

/** The current UI language: `ja` or `en`. */
export function lang() {
  return current;
}

/** The voice-prompt locale matching the UI language. */
export function voiceLocale() {
  return current === 'ja' ? 'ja-JP' : 'en-US';
}

/** The message `key` in the current language, with `{name}` placeholders filled. */
export function t(key, vars = {}) {
  const text = MESSAGES[current][key] ?? MESSAGES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** Whether a message exists (for optional texts such as failure reasons). */
export function has(key) {
  return key in MESSAGES[current];
}

/**
 * Fills static text: `data-i18n="key"` sets the text, `data-i18n-attr="attr:key;attr:key"`
 * sets attributes (aria-label, title, content…).
 */
export function translatePage(root = document) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':').map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
  for (const button of root.querySelectorAll('[data-lang-choice]')) {
    button.setAttribute('aria-pressed', String(button.dataset.langChoice === current));
  }
}

/** Switches language, remembers it, and tells every listener to redraw. */
export function setLang(next) {
  const value = normalize(next);
  if (!value || value === current) return;
  current = value;
  try {
    localStorage.setItem(STORAGE_KEY, value);
  } catch {
    // Not remembered; the switch still applies to this page.
  }
  // A `?lang=` in the address would undo the choice on reload: keep it in step.
  const url = new URL(location.href);
  if (url.searchParams.has('lang')) {
    url.searchParams.set('lang', value);
    history.replaceState(null, '', url);
  }
  translatePage();
  for (const fn of listeners) fn(value);
}

/** Calls `fn(lang)` after every language switch. */
export function onLangChange(fn) {
  listeners.add(fn);
}

/** Wires the language buttons (`data-lang-choice="ja|en"`) and translates the page once. */
export function initLanguage() {
  for (const button of document.querySelectorAll('[data-lang-choice]')) {
    button.addEventListener('click', () => setLang(button.dataset.langChoice));
  }
  translatePage();
}

/** A time of day in the UI language, e.g. 14:05:09. */
export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  return date.toLocaleTimeString(current === 'ja' ? 'ja-JP' : 'en-US', {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hour12: false,
  });
}
