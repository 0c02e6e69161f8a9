from marshmallow import Schema, fields, validate

PASSWORD_LENGTH = validate.Length(min=8, max=256)


class SignupSchema(Schema):
    name = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=100),
            # Names end up in emails; control characters (CR, LF, ...) have no place in a name.
            validate.Regexp(r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$", error="Must be printable text."),
        ],
    )
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=PASSWORD_LENGTH)


class LoginSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class UserIdSchema(Schema):
    user_id = fields.UUID(required=True)


class PasswordChangeSchema(Schema):
    current_password = fields.String(required=True, validate=validate.Length(min=1, max=256))
    new_password = fields.String(required=True, validate=PASSWORD_LENGTH)
