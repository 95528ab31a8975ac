import json, boto3
def handler(event, context):
    table = boto3.resource("dynamodb").Table(event["table_name"])
    table.put_item(Item={"id": event["id"], "message": event["message"]})
    boto3.client("s3").put_object(Bucket=event["bucket"], Key=f"records/{event['id']}.json", Body=json.dumps(event))
    return {"statusCode": 200, "body": json.dumps({"id": event["id"]})}
