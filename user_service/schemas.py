from marshmallow import Schema, fields, validate

PASSWORD_LENGTH = validate.Length(min=8, max=256)
# At least one visible character; no C0 or C1 control characters (CR, LF, NUL, ESC...) anywhere.
PRINTABLE_TEXT = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*\Z"
NO_CONTROL_CHARACTERS = validate.Regexp(r"^[^\x00-\x1f\x7f-\x9f]*\Z", error="Must not contain control characters.")


class SignupSchema(Schema):
    name = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=100),
            # Names end up in emails; control characters (CR, LF, ...) have no place in a name.
            validate.Regexp(PRINTABLE_TEXT, error="Must be printable text."),
        ],
    )
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=PASSWORD_LENGTH)


class LoginSchema(Schema):
    email = fields.String(required=True, validate=[validate.Length(min=1, max=254), NO_CONTROL_CHARACTERS])
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class UserIdSchema(Schema):
    user_id = fields.UUID(required=True)


class PasswordChangeSchema(Schema):
    current_password = fields.String(required=True, validate=validate.Length(min=1, max=256))
    new_password = fields.String(required=True, validate=PASSWORD_LENGTH)
